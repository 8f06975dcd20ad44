"""A guided demo: a worker on the embedded SQLite default runs immediate, deferred, retried jobs.

Run it with `python -m corequeue.demo` (or `scripts/demo`). It prints each job as it runs, with
a live table of the queue's channels, and exits when every job has finished.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

import corequeue as cq


@dataclass
class ResizeImage:
    """An immediate job."""

    name: str


@dataclass
class SendReminder:
    """A deferred job: it records when it was due, to show how late it ran."""

    number: int
    due_at: float


@dataclass
class ChargeCard:
    """A flaky job: it fails `failures` times before it succeeds."""

    order: int
    failures: int


class Demo:
    """Dispatches the workload, runs the worker, and reports what happens."""

    def __init__(self, db: Path, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.remaining = 0
        self.all_done = asyncio.Event()
        events = cq.SyncDispatcher()
        events.subscribe(cq.listen(cq.BeforeRetryPayload, self.on_retry))
        self.queue = cq.Queue(
            cq.SQLiteDriver(db, name="demo"),
            parallelism=4,
            event_dispatcher=events,
            backoff=lambda previous: timedelta(milliseconds=random.randint(400, 800)),
        )
        self.queue.subscribe(cq.listen(ResizeImage, self.resize))
        self.queue.subscribe(cq.listen(SendReminder, self.remind))
        self.queue.subscribe(cq.listen(ChargeCard, self.charge))

    def say(self, message: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:7.3f}s[/]  {message}")

    async def dispatch_workload(self) -> None:
        immediate = [ResizeImage(f"photo-{n}.jpg") for n in range(1, 7)]
        delays = [0.5, 1.0, 1.5, 2.5]
        deferred = [
            cq.adjust(SendReminder(n, time.time() + delay), defer=timedelta(seconds=delay))
            for n, delay in enumerate(delays, start=1)
        ]
        flaky = [cq.adjust(ChargeCard(order, failures=2), max_attempts=3) for order in (1, 2)]
        ids = await self.queue.dispatch_many([*immediate, *deferred, *flaky])
        self.remaining = len(ids)
        self.say(
            f"dispatched [bold]{len(immediate)}[/] immediate, [bold]{len(deferred)}[/] deferred "
            f"(0.5-2.5 s) and [bold]{len(flaky)}[/] flaky jobs (fail twice, 3 attempts)"
        )

    def finished(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.all_done.set()

    async def resize(self, job: cq.ReceivedJob) -> None:
        await asyncio.sleep(0.05)  # pretend to work
        self.say(f"[green]✓[/] resized {job.data.name}")
        self.finished()

    async def remind(self, job: cq.ReceivedJob) -> None:
        late_ms = (time.time() - job.data.due_at) * 1000
        self.say(f"[green]✓[/] reminder #{job.data.number} ran {late_ms:.1f} ms after its due time")
        self.finished()

    async def charge(self, job: cq.ReceivedJob) -> None:
        if job.attempt <= job.data.failures:
            raise ConnectionError("payment gateway timed out")
        self.say(f"[green]✓[/] charged order #{job.data.order} on attempt {job.attempt}")
        self.finished()

    async def on_retry(self, event: cq.Job) -> None:
        payload: cq.BeforeRetryPayload = event.data
        job = payload.job
        self.say(
            f"[yellow]↻[/] order job {job.id[:8]} failed ({payload.err}); "
            f"retry {job.attempts + 1}/{job.max_attempts} is scheduled"
        )

    async def status(self) -> Table:
        info = await self.queue.info()
        table = Table(title="queue 'demo' on SQLite", title_justify="left")
        for channel in info.as_dict():
            table.add_column(channel, justify="right")
        table.add_row(*(str(count) for count in info.as_dict().values()))
        return table

    async def run(self) -> QueueSummary:
        await self.dispatch_workload()
        consumer = asyncio.create_task(self.queue.consume())
        with Live(await self.status(), console=self.console, refresh_per_second=10) as live:
            while not self.all_done.is_set():
                live.update(await self.status())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.all_done.wait(), timeout=0.1)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            live.update(await self.status())
        info = await self.queue.info()
        await self.queue.close()
        return QueueSummary(info, time.monotonic() - self.started)


@dataclass(frozen=True)
class QueueSummary:
    """What the demo ended with."""

    info: cq.QueueInfo
    elapsed_seconds: float


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m corequeue.demo", description=__doc__)
    parser.add_argument("--db", type=Path, help="SQLite file to use (default: a scratch file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the demo narrates failures itself
    console = Console()
    with tempfile.TemporaryDirectory() as folder:
        db = args.db or Path(folder) / "corequeue-demo.db"
        console.rule("[bold]corequeue demo[/]: a worker on the embedded SQLite default")
        console.print(f"store: {db}  ·  parallelism 4  ·  Ctrl-C stops the worker gracefully\n")
        summary = asyncio.run(Demo(db, console).run())
    console.print(
        f"\n[bold green]all jobs done[/] in {summary.elapsed_seconds:.1f} s; "
        f"nothing left in the queue: {summary.info.pending == 0 and summary.info.failed == 0}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
