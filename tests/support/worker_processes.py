"""Worker processes for end-to-end tests: the ledger of who ran what, and stopping them.

A worker prints `done <job id>` when its listener has run a job; the test reads those lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import corequeue as cq

GUARD_SECONDS = 60.0
"""How long a test waits for work that takes a few seconds at most, before failing."""


@dataclass
class Ledger:
    """Which worker ran which job, in order, and an event set once every expected job ran."""

    runs: list[tuple[str, str]] = field(default_factory=list)  # (worker, job id)
    expected: set[str] = field(default_factory=set)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, job_ids: Iterable[str]) -> None:
        self.expected.update(job_ids)
        self._check()

    def record(self, worker: str, job_id: str) -> None:
        self.runs.append((worker, job_id))
        self.progress.set()
        self._check()

    def ids(self) -> list[str]:
        return [job_id for _, job_id in self.runs]

    async def wait_for_runs(self, count: int) -> None:
        while len(self.runs) < count:
            self.progress.clear()
            await self.progress.wait()

    def _check(self) -> None:
        if self.expected and self.expected <= set(self.ids()):
            self.complete.set()


async def read_ledger(process: asyncio.subprocess.Process, tag: str, ledger: Ledger) -> None:
    """Record every `done <id>` line the worker prints, until it exits."""
    assert process.stdout is not None
    async for line in process.stdout:
        if line.startswith(b"done "):
            ledger.record(tag, line.removeprefix(b"done ").strip().decode())


async def stop(process: asyncio.subprocess.Process) -> None:
    """Stop a worker gracefully; kill it if it does not stop within the guard time."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), GUARD_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker process runs."""

    lease_seconds: float = 30.0
    work_seconds: float = 0.0
    parallelism: int = 4

    def arguments(self) -> list[str]:
        """The command-line options `worker_parser()` reads back."""
        return [
            "--lease-seconds", str(self.lease_seconds),
            "--work-seconds", str(self.work_seconds),
            "--parallelism", str(self.parallelism),
        ]  # fmt: skip


def worker_parser() -> argparse.ArgumentParser:
    """A worker's command line: `--name` and the WorkerOptions; add the store's own options."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--lease-seconds", type=float, default=30.0)
    parser.add_argument("--work-seconds", type=float, default=0.0)
    parser.add_argument("--parallelism", type=int, default=4)
    return parser


async def consume_printing(
    driver: cq.Driver, payload_class: type, arguments: argparse.Namespace
) -> None:
    """Consume `driver`'s queue until SIGTERM, printing `done <id>` per job its listener ran
    (after `--work-seconds`, standing for the job's own work)."""
    queue = cq.Queue(driver, parallelism=arguments.parallelism)

    async def run(job: cq.Job) -> None:
        await asyncio.sleep(arguments.work_seconds)
        print(f"done {cast(cq.ReceivedJob, job).id}", flush=True)

    queue.subscribe(cq.listen(payload_class, run))
    try:
        # SIGTERM cancels consume() after its graceful shutdown: exit 0, as a worker should.
        with contextlib.suppress(asyncio.CancelledError):
            await queue.consume()
    finally:
        await queue.close()
