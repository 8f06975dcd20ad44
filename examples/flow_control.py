"""Flow control: priorities, a per-tenant concurrency limit and a rate, on SQLite.

Jobs are dispatched while the queue is paused, then it is resumed: the urgent job starts
first, no tenant ever has more than one job running, and starts are spaced by the rate.

Prints:
    first to start: urgent
    most jobs of one tenant at once: 1
    jobs run: 7
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import corequeue as cq


@dataclass
class CallPartner:
    tenant: str
    name: str


async def main(folder: Path) -> None:
    queue = cq.Queue(
        cq.SQLiteDriver(folder / "jobs.db"),
        parallelism=4,
        limits=cq.Limits(group_concurrency=1, rate=cq.Rate(50, timedelta(seconds=1))),
    )
    started: list[str] = []
    running: dict[str, int] = {}
    most = 0
    done = asyncio.Event()

    @queue.listener(CallPartner)
    async def call_partner(job: cq.Job) -> None:
        nonlocal most
        call: CallPartner = job.data
        started.append(call.name)
        running[call.tenant] = running.get(call.tenant, 0) + 1
        most = max(most, running[call.tenant])
        await asyncio.sleep(0.01)  # the call itself
        running[call.tenant] -= 1
        if len(started) == 7:
            done.set()

    await queue.pause()  # dispatch everything first, so the order is the store's to decide
    for n in range(4):
        await queue.dispatch(cq.adjust(CallPartner("acme", f"acme-{n}"), group="acme"))
    for n in range(2):
        await queue.dispatch(cq.adjust(CallPartner("globex", f"globex-{n}"), group="globex"))
    urgent = CallPartner("initech", "urgent")
    await queue.dispatch(cq.adjust(urgent, group="initech", priority=10))
    await queue.resume()

    worker = asyncio.create_task(queue.consume(handle_signals=False))
    await done.wait()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    await queue.close()

    print(f"first to start: {started[0]}")
    print(f"most jobs of one tenant at once: {most}")
    print(f"jobs run: {len(started)}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        asyncio.run(main(Path(scratch)))
