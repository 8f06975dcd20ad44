"""Worker heartbeats end to end: a consumer lists itself while it runs, leaves when it stops,
and a SIGKILLed worker process vanishes from `workers()` after three renewal periods."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import corequeue as cq
from tests.integration.conftest import consuming, eventually

ROOT = Path(__file__).resolve().parents[2]


async def test_a_consumer_is_listed_while_it_runs_and_leaves_when_it_stops() -> None:
    queue = cq.Queue(cq.InProcessDriver(lease=timedelta(milliseconds=300)))

    async with consuming(queue):
        await eventually(lambda: _count(queue, 1))
        (worker,) = await queue.workers()

    assert (worker.hostname, worker.pid) == (os.uname().nodename, os.getpid())
    assert await queue.workers() == []


async def test_a_killed_worker_vanishes_after_three_renewal_periods(tmp_path: Path) -> None:
    lease = timedelta(milliseconds=900)
    db, ledger = tmp_path / "jobs.db", tmp_path / "ledger"
    queue = cq.Queue(cq.SQLiteDriver(db, lease=lease))
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.workers.sqlite_worker",
        str(db), str(ledger), str(int(lease.total_seconds() * 1000)), cwd=ROOT,
    )  # fmt: skip
    try:
        await eventually(lambda: _count(queue, 1), within=30)
        (listed,) = await queue.workers()
        assert listed.pid == worker.pid

        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        killed = time.monotonic()
        await eventually(lambda: _count(queue, 0), within=10)
        gone_after = time.monotonic() - killed
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await queue.close()

    assert gone_after <= lease.total_seconds() + 0.5  # the last beat plus three periods


async def _count(queue: cq.Queue, count: int) -> bool:
    return len(await queue.workers()) == count
