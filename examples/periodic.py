"""Periodic jobs: a heartbeat every second and a nightly report, run by an ordinary worker.

Uses the embedded SQLite driver in a scratch folder. The worker ticks both schedules while it
consumes; each slot's job is enqueued exactly once, with id `periodic:<name>:<slot ms>`, however
many workers share the store. After `--beats` heartbeats (3 by default) it stops and lists the
schedules. Prints:
    heartbeat ran
    heartbeat ran
    heartbeat ran
    heartbeat: every 0:00:01 UTC, misfire skip
    nightly-report: 0 3 * * * Europe/Berlin, misfire once, next run at 03:00
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import corequeue as cq


@dataclass
class Heartbeat:
    source: str


@dataclass
class NightlyReport:
    day: str


def nightly_report(slot: datetime) -> NightlyReport:
    """Make the report job of a slot: the callable is given the slot's datetime, in its zone."""
    return NightlyReport(day=slot.date().isoformat())


async def main(beats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        queue = cq.Queue(cq.SQLiteDriver(Path(folder) / "jobs.db"))
        enough = asyncio.Event()
        ran = 0

        @queue.listener(Heartbeat)
        async def heartbeat(job: cq.Job) -> None:
            nonlocal ran
            ran += 1
            print("heartbeat ran")
            if ran == beats:
                enough.set()

        queue.subscribe(cq.listen(NightlyReport, lambda job: None))
        queue.periodic(timedelta(seconds=1), Heartbeat("example"), name="heartbeat")
        queue.periodic(
            "0 3 * * *", nightly_report, name="nightly-report", tz="Europe/Berlin", misfire="once"
        )

        worker = asyncio.create_task(queue.consume())
        await asyncio.wait_for(enough.wait(), timeout=beats + 10)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        for info in await queue.periodic_schedules():
            print(describe(info))
        await queue.close()


def describe(info: cq.PeriodicInfo) -> str:
    """One line about a schedule: when it runs and, for the nightly one, when it runs next."""
    when = info.schedule if isinstance(info.schedule, str) else f"every {info.schedule}"
    line = f"{info.name}: {when} {info.tz}, misfire {info.misfire}"
    if info.name == "nightly-report" and info.next_run is not None:
        line += f", next run at {info.next_run:%H:%M}"
    return line


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beats", type=int, default=3, help="heartbeats to run before stopping")
    asyncio.run(main(parser.parse_args().beats))
