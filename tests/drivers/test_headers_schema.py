"""The schema step that adds job headers to the SQL stores keeps every job already stored.

Jobs written before the step read as having no headers; jobs pushed after it keep theirs. The
shared behaviour (headers through every move) is in corequeue.testing.contract_headers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from corequeue.drivers.base import Channel, QueueInfo
from corequeue.drivers.postgres import PostgresDriver, migrations
from corequeue.drivers.sqlite import SCHEMA_VERSION, SQLiteDriver
from corequeue.errors import QueueEmpty
from corequeue.testing import FakeClock
from tests.drivers.test_sqlite import version_1_file
from tests.support.driver_postgres import fresh_schema, insert_version_1_row, postgres_dsn
from tests.support.drivers import POP_TIMEOUT
from tests.support.jobs import persisted

HEADERS_VERSION = 4
"""The schema version (SQLite and PostgreSQL alike) that added the `headers` column."""


async def test_an_older_sqlite_file_gains_headers_and_keeps_its_jobs(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "jobs.db"
    version_1_file(path, [("old", 0, clock.now_ms())])
    driver = SQLiteDriver(path, pop_timeout=POP_TIMEOUT, clock=clock)

    old = await driver.pop()
    await driver.push(persisted("new", headers={"request-id": "r-1"}), timedelta(0))
    new = await driver.pop()
    await driver.close()

    assert (old.id, old.headers) == ("old", {})
    assert (new.id, new.headers) == ("new", {"request-id": "r-1"})
    with sqlite3.connect(path) as db:
        columns = [column[1] for column in db.execute("PRAGMA table_info(corequeue_jobs)")]
        version = db.execute("SELECT value FROM corequeue_meta").fetchone()
    db.close()
    assert "headers" in columns
    assert int(version[0]) == SCHEMA_VERSION >= HEADERS_VERSION


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema(postgres_dsn()) as name:
        yield name


async def test_a_postgres_schema_before_headers_is_migrated_with_its_jobs(schema: str) -> None:
    clock = FakeClock()
    dsn = postgres_dsn()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await migrations.migrate(connection, schema, target=HEADERS_VERSION - 1)
        await insert_version_1_row(connection, schema, "old", 0, clock.now_ms())
    driver = PostgresDriver(dsn, name="jobs", schema=schema, pop_timeout=POP_TIMEOUT, clock=clock)

    applied = await driver.migrate()
    old = await driver.pop()
    await driver.push(persisted("new", headers={"request-id": "r-1"}), timedelta(0))
    new = await driver.pop()

    assert HEADERS_VERSION in applied
    assert (old.id, old.headers) == ("old", {})
    assert (new.id, new.headers) == ("new", {"request-id": "r-1"})
    assert await driver.info() == QueueInfo(reserved=2)
    await driver.close()


async def test_a_headers_column_edited_into_something_else_parks_the_job(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "jobs.db"
    driver = SQLiteDriver(path, pop_timeout=POP_TIMEOUT, clock=clock)
    await driver.push(persisted("a"), timedelta(0))
    with sqlite3.connect(path) as db:
        db.execute("""UPDATE corequeue_jobs SET headers = '{"n": 1}' WHERE id = 'a'""")
    db.close()

    with pytest.raises(QueueEmpty):
        await driver.pop()

    assert await driver.info() == QueueInfo(failed=1)
    [view] = await driver.list_jobs(Channel.FAILED)
    assert view.job.last_error is not None
    assert "headers" in view.job.last_error
    await driver.close()
