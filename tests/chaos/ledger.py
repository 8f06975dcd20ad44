"""The chaos jobs and the ledgers their workers keep outside the store under test.

Each worker process appends one line per event to its own ledger file, opened with O_APPEND and
written with one `os.write` per line, so a line survives a SIGKILL of the worker; the line that
records a completion is also fsync'd. A line is `<event> <job id> <attempt> <unix µs> [flag]`:

    ready    -     0   t                the worker is about to consume
    popped   <id>  <n> t  [recovered]   the store reserved attempt n for this worker;
                                        `recovered` when it came back from an expired lease
    start    <id>  <n> t                the listener began
    fail     <id>  <n> t                the listener failed on purpose (flaky and doomed jobs)
    done     <id>  <n> t                the listener completed
    acked    <id>  <n> t                the store confirmed the ack
    settled  <id>  <n> t                the store confirmed a retry or fail (n: the attempt run)
    released <id>  <n> t                the store took the job back at shutdown
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ChaosJob:
    """The payload of every chaos job.

    Attributes:
        kind: "immediate", "deferred", "flaky" (fails its first attempts) or "doomed" (always
            fails, so it must end in `failed`, or in `timeout` if a kill took its last attempt).
        due_us: When the job may run at the earliest, in Unix microseconds, taken before dispatch.
        fail_first: How many attempts fail on purpose before one succeeds.
        work_ms: How long the listener works (an await, so other jobs run meanwhile).
    """

    kind: str
    due_us: int
    fail_first: int = 0
    work_ms: int = 0


def now_us() -> int:
    """Return the wall clock in Unix microseconds: the time base of ledgers and due times."""
    return time.time_ns() // 1000


class LedgerWriter:
    """Appends events to one worker's ledger; each line reaches the file with one write."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(
        self, event: str, job_id: str, attempt: int, flag: str = "", sync: bool = False
    ) -> None:
        """Append one event line; `sync` makes it durable (fdatasync) before returning."""
        line = f"{event} {job_id} {attempt} {now_us()} {flag}".rstrip() + "\n"
        os.write(self._fd, line.encode())
        if sync:
            os.fdatasync(self._fd)


@dataclass(slots=True)
class Run:
    """One reservation of one job by one worker, from `popped` to its last line."""

    worker: int
    job_id: str
    attempt: int
    popped_us: int
    recovered: bool
    started_us: int | None = None
    failed_us: int | None = None
    done_us: int | None = None
    acked_us: int | None = None
    settled_us: int | None = None
    released_us: int | None = None

    @property
    def given_back_us(self) -> int | None:
        """When the store confirmed this reservation was over (ack, retry, fail or release)."""
        moments = [self.acked_us, self.settled_us, self.released_us]
        return min((t for t in moments if t is not None), default=None)

    @property
    def last_us(self) -> int:
        """The last moment the worker wrote about this reservation."""
        moments = [self.popped_us, self.started_us, self.failed_us, self.done_us]
        moments += [self.acked_us, self.settled_us, self.released_us]
        return max(t for t in moments if t is not None)


@dataclass
class Ledgers:
    """Every worker's ledger, read back and grouped into reservations."""

    runs: list[Run] = field(default_factory=list)

    def by_job(self) -> dict[str, list[Run]]:
        """Return the reservations of each job id, in the order the store made them."""
        grouped: dict[str, list[Run]] = {}
        for run in sorted(self.runs, key=lambda r: r.popped_us):
            grouped.setdefault(run.job_id, []).append(run)
        return grouped

    def done_ids(self) -> set[str]:
        """Return the ids of the jobs completed at least once."""
        return {run.job_id for run in self.runs if run.done_us is not None}


def read_ledgers(paths: Iterable[tuple[int, Path]]) -> Ledgers:
    """Read the ledger of every worker (number, path) into reservations."""
    ledgers = Ledgers()
    for worker, path in paths:
        if path.exists():
            _add_runs(ledgers, worker, _events(path))
    return ledgers


def _events(path: Path) -> Iterator[tuple[str, str, int, int, str]]:
    for line in path.read_text().splitlines():
        name, job_id, attempt, at_us, *flag = line.split()
        yield name, job_id, int(attempt), int(at_us), flag[0] if flag else ""


def _add_runs(
    ledgers: Ledgers, worker: int, events: Iterator[tuple[str, str, int, int, str]]
) -> None:
    held: dict[tuple[str, int], Run] = {}  # (job id, attempt) -> its reservation here
    for name, job_id, attempt, at_us, flag in events:
        if name == "popped":
            run = Run(worker, job_id, attempt, at_us, flag == "recovered")
            held[job_id, attempt] = run
            ledgers.runs.append(run)
        elif name in _MOMENTS:
            setattr(held[job_id, attempt], _MOMENTS[name], at_us)


_MOMENTS = {
    "start": "started_us",
    "fail": "failed_us",
    "done": "done_us",
    "acked": "acked_us",
    "settled": "settled_us",
    "released": "released_us",
}
