"""Worker processes for end-to-end tests: the ledger of who ran what, and stopping them.

A worker prints `done <job id>` when its listener has run a job; the test reads those lines.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker process runs."""

    lease_seconds: float = 30.0
    work_seconds: float = 0.0
    parallelism: int = 4


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
