"""SQLite-only behaviour: the file, WAL mode, schema migrations, sharing one file between workers
and between threads."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from corequeue.drivers.base import Channel, QueueInfo
from corequeue.drivers.sqlite import SCHEMA_VERSION, SQLiteDriver
from corequeue.errors import InvalidOption, QueueEmpty, StoreUnavailable
from corequeue.testing import FakeClock
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


# The schema a file of the first release holds (version 1: no `token` column).
_VERSION_1 = """
CREATE TABLE corequeue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO corequeue_meta VALUES ('schema_version', '1');
CREATE TABLE corequeue_jobs (
    queue TEXT NOT NULL, id TEXT NOT NULL, state INTEGER NOT NULL, due_ms INTEGER NOT NULL,
    type TEXT NOT NULL, value BLOB NOT NULL, handle_timeout_ms INTEGER NOT NULL,
    backoff_ms INTEGER NOT NULL, attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
    last_error TEXT, UNIQUE (queue, id)
);
CREATE INDEX corequeue_jobs_due ON corequeue_jobs (queue, state, due_ms);
"""


def version_1_file(path: Path, rows: list[tuple[str, int, int]]) -> None:
    """Write a version 1 file holding jobs `(id, state, due_ms)` of the queue `default`."""
    with sqlite3.connect(path) as db:
        db.executescript(_VERSION_1)
        db.executemany(
            "INSERT INTO corequeue_jobs VALUES ('default', ?, ?, ?, 'tests.Job', x'7b7d', "
            "60000, 0, 1, 3, NULL)",
            rows,
        )
    db.close()


async def test_a_version_1_file_is_upgraded_with_its_jobs(tmp_path: Path) -> None:
    clock = FakeClock()
    now = clock.now_ms()
    version_1_file(tmp_path / "jobs.db", [("waiting", 0, now), ("failed", 2, now)])
    driver = SQLiteDriver(tmp_path / "jobs.db", pop_timeout=SHORT, clock=clock)

    job = await driver.pop()

    assert job.id == "waiting"
    assert job.token is not None
    assert await driver.ack(job)
    assert await driver.info() == QueueInfo(failed=1)
    await driver.close()
    db = sqlite3.connect(tmp_path / "jobs.db")
    assert db.execute("SELECT value FROM corequeue_meta").fetchone() == (str(SCHEMA_VERSION),)
    assert "token" in [column[1] for column in db.execute("PRAGMA table_info(corequeue_jobs)")]
    db.close()


async def test_a_job_reserved_before_the_upgrade_comes_back_when_its_lease_runs_out(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    version_1_file(tmp_path / "jobs.db", [("held", 1, clock.now_ms() + 1000)])
    driver = SQLiteDriver(tmp_path / "jobs.db", pop_timeout=SHORT, clock=clock)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    clock.advance(timedelta(seconds=1))
    job = await driver.pop()

    assert (job.id, job.attempts) == ("held", 2)
    assert await driver.ack(job)
    await driver.close()


async def test_a_version_2_file_is_upgraded_with_a_periodic_table(tmp_path: Path) -> None:
    clock = FakeClock()
    version_1_file(tmp_path / "jobs.db", [("waiting", 0, clock.now_ms())])
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute("ALTER TABLE corequeue_jobs ADD COLUMN token TEXT")
        db.execute("UPDATE corequeue_meta SET value = '2'")
    db.close()
    driver = SQLiteDriver(tmp_path / "jobs.db", pop_timeout=SHORT, clock=clock)

    assert await driver.enqueue_slot("s", clock.now_ms(), persisted("periodic:s:1"))

    assert await driver.info() == QueueInfo(waiting=2)
    await driver.close()
    db = sqlite3.connect(tmp_path / "jobs.db")
    assert db.execute("SELECT value FROM corequeue_meta").fetchone() == (str(SCHEMA_VERSION),)
    assert db.execute("SELECT * FROM corequeue_periodic").fetchall() == [
        ("default", "s", clock.now_ms())
    ]
    db.close()


async def test_a_push_that_fails_leaves_the_slot_where_it_was(tmp_path: Path) -> None:
    clock = FakeClock()
    driver = SQLiteDriver(tmp_path / "jobs.db", pop_timeout=SHORT, clock=clock)
    await driver.info()  # creates the file
    refuse = (
        "CREATE TRIGGER refuse BEFORE INSERT ON corequeue_jobs "
        "BEGIN SELECT RAISE(ABORT, 'no insert today'); END"
    )
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute(refuse)
    db.close()

    with pytest.raises(StoreUnavailable, match="no insert today"):
        await driver.enqueue_slot("s", clock.now_ms(), persisted("periodic:s:1"))

    assert await driver.schedule_slots() == {}
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute("DROP TRIGGER refuse")
    db.close()
    assert await driver.enqueue_slot("s", clock.now_ms(), persisted("periodic:s:1"))
    await driver.close()


async def test_queues_sharing_a_file_keep_their_own_slots(tmp_path: Path) -> None:
    clock = FakeClock()
    emails = SQLiteDriver(tmp_path / "jobs.db", name="emails", clock=clock)
    reports = SQLiteDriver(tmp_path / "jobs.db", name="reports", clock=clock)

    assert await emails.enqueue_slot("s", clock.now_ms(), persisted("periodic:s:1"))
    assert await reports.enqueue_slot("s", clock.now_ms(), persisted("periodic:s:1"))

    assert await reports.forget_schedule("s")
    assert await emails.schedule_slots() == {"s": clock.now_ms()}
    await emails.close()
    await reports.close()


async def test_a_file_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute("CREATE TABLE corequeue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO corequeue_meta VALUES ('schema_version', '99')")
    db.close()
    driver = SQLiteDriver(tmp_path / "jobs.db")

    with pytest.raises(StoreUnavailable, match="schema version 99"):
        await driver.info()
    await driver.close()


async def test_a_stale_token_leaves_the_row_as_it_is(tmp_path: Path) -> None:
    clock = FakeClock()
    driver = SQLiteDriver(tmp_path / "jobs.db", pop_timeout=SHORT, clock=clock)
    await driver.push(persisted("a", max_attempts=3), timedelta(0))
    old = await driver.pop()
    clock.advance(driver.lease)
    new = await driver.pop()

    assert not await driver.retry(old)

    db = sqlite3.connect(tmp_path / "jobs.db")
    assert db.execute("SELECT state, token FROM corequeue_jobs").fetchall() == [(1, new.token)]
    db.close()
    assert await driver.fail(new)
    db = sqlite3.connect(tmp_path / "jobs.db")
    assert db.execute("SELECT state, token FROM corequeue_jobs").fetchall() == [(2, None)]
    db.close()
    await driver.close()


THREADS, BATCHES = 6, 300  # enough for a cursor freed off the driver's thread to break a push


async def test_pushes_from_other_threads_and_loops_share_the_connection_safely(
    tmp_path: Path,
) -> None:
    driver = SQLiteDriver(tmp_path / "jobs.db", synchronous="OFF")
    errors: list[BaseException] = []

    async def push_batches(prefix: str) -> None:
        try:
            for batch in range(BATCHES):
                jobs = [(persisted(f"{prefix}-{batch}-{n}"), timedelta(0)) for n in range(5)]
                await driver.push_many(jobs)
        except StoreUnavailable as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=asyncio.run, args=(push_batches(f"thread{n}"),))
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    await push_batches("loop")
    for thread in threads:
        await asyncio.to_thread(thread.join)

    assert errors == []
    assert await driver.info() == QueueInfo(waiting=(THREADS + 1) * BATCHES * 5)
    await driver.close()


async def test_a_version_3_file_is_upgraded_to_keep_results(tmp_path: Path) -> None:
    clock = FakeClock()
    version_1_file(tmp_path / "jobs.db", [("waiting", 0, clock.now_ms())])
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute("ALTER TABLE corequeue_jobs ADD COLUMN token TEXT")
        db.execute(
            "CREATE TABLE corequeue_periodic (queue TEXT NOT NULL, name TEXT NOT NULL, "
            "last_slot_ms INTEGER NOT NULL, PRIMARY KEY (queue, name))"
        )
        db.execute("UPDATE corequeue_meta SET value = '3'")
    db.close()
    driver = SQLiteDriver(tmp_path / "jobs.db", pop_timeout=SHORT, clock=clock)

    job = await driver.pop()
    job.keep_result, job.result = timedelta(minutes=1), b"7"
    assert await driver.ack(job)

    view = await driver.get_job("waiting")
    assert view is not None
    assert (view.channel, view.job.result) == (Channel.COMPLETED, b"7")
    await driver.close()
    db = sqlite3.connect(tmp_path / "jobs.db")
    assert db.execute("SELECT value FROM corequeue_meta").fetchone() == (str(SCHEMA_VERSION),)
    db.close()
