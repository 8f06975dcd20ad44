"""A worker killed with SIGKILL mid-job loses nothing: after its lease expires, another runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import corequeue as cq
from corequeue.drivers.base import QueueInfo

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def worker(db: Path, ledger: Path, lease_ms: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.workers.sqlite_worker", str(db), str(ledger),
         str(lease_ms)],
        cwd=ROOT,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out; ledger: {LAST_LEDGER}"
        time.sleep(0.02)


LAST_LEDGER: list[str] = []


def lines(ledger: Path) -> list[str]:
    LAST_LEDGER[:] = ledger.read_text().splitlines() if ledger.exists() else []
    return list(LAST_LEDGER)


async def test_job_of_a_killed_worker_completes_on_another_after_lease_expiry(
    tmp_path: Path,
) -> None:
    db, ledger = tmp_path / "jobs.db", tmp_path / "ledger.txt"
    hold = tmp_path / "ledger.txt.hold"
    hold.touch()
    queue = cq.Queue(cq.SQLiteDriver(db))
    job_id = await queue.dispatch(cq.adjust("important", max_attempts=3))
    others = await queue.dispatch_many([cq.adjust(name, max_attempts=2) for name in "abc"])

    with worker(db, ledger, lease_ms=1000) as first:
        wait_for(lambda: f"start {job_id} 1" in lines(ledger))
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    hold.unlink()
    with worker(db, ledger, lease_ms=1000):
        wait_for(lambda: all(f"done {i}" in lines(ledger) for i in [job_id, *others]))
        # The ledger line is written when the listener returns; the ack follows in a batch.
        deadline = time.monotonic() + 30
        while (info := await queue.info()) != QueueInfo() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    assert f"start {job_id} 2" in lines(ledger)  # the lost attempt counted
    assert info == QueueInfo()
    await queue.close()


async def test_sigterm_stops_a_worker_gracefully_returning_its_job(tmp_path: Path) -> None:
    db, ledger = tmp_path / "jobs.db", tmp_path / "ledger.txt"
    (tmp_path / "ledger.txt.hold").touch()
    queue = cq.Queue(cq.SQLiteDriver(db))
    job_id = await queue.dispatch("held")

    with worker(db, ledger, lease_ms=30_000) as process:
        wait_for(lambda: f"start {job_id} 1" in lines(ledger))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0

    assert await queue.info() == QueueInfo(waiting=1)
    job = await queue.driver.pop()
    assert (job.id, job.attempts) == (job_id, 1)
    await queue.close()


def test_worker_leases_are_a_timedelta() -> None:
    assert cq.SQLiteDriver("unused.db", lease=timedelta(seconds=3)).lease == timedelta(seconds=3)
