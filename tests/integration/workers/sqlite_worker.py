"""A worker process for crash tests: consumes a SQLite queue and records runs in a ledger.

Usage: python -m tests.integration.workers.sqlite_worker DB LEDGER LEASE_MS

The listener appends "start <id> <attempt>" to the ledger, then blocks while a file named
"<LEDGER>.hold" exists (so a test can kill the worker mid-job), then appends "done <id>".
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import corequeue as cq


def append(ledger: Path, line: str) -> None:
    with ledger.open("a") as file:
        file.write(line + "\n")
        file.flush()


async def main(db: Path, ledger: Path, lease: timedelta) -> None:
    driver = cq.SQLiteDriver(db, lease=lease, pop_timeout=timedelta(milliseconds=200))
    queue = cq.Queue(driver, parallelism=2, shutdown_grace=timedelta(milliseconds=500))
    hold = ledger.with_name(ledger.name + ".hold")

    @queue.listener(str)
    async def work(job: cq.ReceivedJob) -> None:
        append(ledger, f"start {job.id} {job.attempt}")
        while hold.exists():
            await asyncio.sleep(0.01)
        append(ledger, f"done {job.id}")

    append(ledger, "ready")
    await queue.consume()


if __name__ == "__main__":
    db_path, ledger_path, lease_ms = sys.argv[1:4]
    asyncio.run(main(Path(db_path), Path(ledger_path), timedelta(milliseconds=int(lease_ms))))
