"""SQLite-only behaviour: the file, WAL mode, schema version, sharing one file between workers."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from corequeue.drivers.base import QueueInfo
from corequeue.drivers.sqlite import SCHEMA_VERSION, SQLiteDriver
from corequeue.errors import InvalidOption, QueueEmpty, StoreUnavailable
from tests.support.jobs import persisted

SHORT = timedelta(milliseconds=100)


async def drain(driver: SQLiteDriver) -> list[str]:
    ids: list[str] = []
    while True:
        try:
            jobs = await driver.pop_many(7)
        except QueueEmpty:
            return ids
        for job in jobs:
            ids.append(job.id)
            await driver.ack(job)


async def test_the_file_is_created_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    driver = SQLiteDriver(tmp_path / "nested" / "jobs.db")
    await driver.info()
    await driver.close()

    db = sqlite3.connect(tmp_path / "nested" / "jobs.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT value FROM corequeue_meta").fetchone() == (str(SCHEMA_VERSION),)


async def test_queues_sharing_a_file_are_separate(tmp_path: Path) -> None:
    emails = SQLiteDriver(tmp_path / "jobs.db", name="emails", pop_timeout=SHORT)
    reports = SQLiteDriver(tmp_path / "jobs.db", name="reports", pop_timeout=SHORT)

    await emails.push(persisted("a"), timedelta(0))

    assert await reports.info() == QueueInfo()
    with pytest.raises(QueueEmpty):
        await reports.pop()
    assert (await emails.pop()).id == "a"
    await emails.close()
    await reports.close()


async def test_jobs_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    first = SQLiteDriver(tmp_path / "jobs.db")
    await first.push(persisted("a"), timedelta(0))
    await first.close()

    second = SQLiteDriver(tmp_path / "jobs.db", pop_timeout=SHORT)

    assert (await second.pop()).id == "a"
    await second.close()


async def test_many_drivers_on_one_file_deliver_each_job_once(tmp_path: Path) -> None:
    drivers = [SQLiteDriver(tmp_path / "jobs.db", pop_timeout=SHORT) for _ in range(4)]
    ids = [f"job-{n}" for n in range(400)]
    await drivers[0].push_many([(persisted(job_id), timedelta(0)) for job_id in ids])

    results = await asyncio.gather(*(drain(driver) for driver in drivers))

    popped = [job_id for result in results for job_id in result]
    assert sorted(popped) == sorted(ids)
    for driver in drivers:
        await driver.close()


def test_worker_processes_sharing_a_file_deliver_each_job_once(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    ids = [f"job-{n}" for n in range(300)]

    async def fill() -> None:
        driver = SQLiteDriver(db)
        await driver.push_many([(persisted(job_id), timedelta(0)) for job_id in ids])
        await driver.close()

    asyncio.run(fill())
    script = (
        "import asyncio, sys\n"
        "from datetime import timedelta\n"
        "from corequeue.drivers.sqlite import SQLiteDriver\n"
        "from tests.drivers.test_sqlite import drain\n"
        "driver = SQLiteDriver(sys.argv[1], pop_timeout=timedelta(milliseconds=300))\n"
        "print('\\n'.join(asyncio.run(drain(driver))))\n"
    )
    root = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(db)], cwd=root, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]

    popped = [line for output in outputs for line in output.splitlines() if line]
    assert sorted(popped) == sorted(ids)


async def test_an_unreadable_file_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "jobs.db").write_bytes(b"this is not a database" * 100)
    driver = SQLiteDriver(tmp_path / "jobs.db")

    with pytest.raises(StoreUnavailable, match=r"jobs\.db"):
        await driver.push(persisted("a"), timedelta(0))
    await driver.close()


def test_invalid_options_are_refused() -> None:
    with pytest.raises(InvalidOption, match="synchronous"):
        SQLiteDriver("x.db", synchronous="SOMETIMES")
    with pytest.raises(InvalidOption, match="name"):
        SQLiteDriver("x.db", name="")
