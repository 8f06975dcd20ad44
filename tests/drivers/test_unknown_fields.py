"""Envelopes keep fields they do not know, on every driver (SPEC: envelope evolution).

A newer release may store more about a job (labels, say). A worker of an older
release moves that job through retry, fail, reload, lease recovery and release without losing
any of it:

- Stores that keep one envelope per job (in-process, Redis) carry unknown fields in
  `PersistedJob.extra` and write them back.
- SQL stores keep columns: this release's statements name the columns they change, so a column
  added by a newer release keeps its value. Shown here by adding columns by hand.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
from psycopg import sql

from corequeue.drivers.base import Channel, Driver, InspectDriver
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.job import PersistedJob
from corequeue.testing import FakeClock
from tests.drivers.conftest import FACTORIES
from tests.support.driver_postgres import fresh_schema, postgres_dsn
from tests.support.drivers import POP_TIMEOUT
from tests.support.jobs import persisted

EXTRA: dict[str, Any] = {
    "labels": {"team": "billing"},
    "future": {"kind": "sampled", "rate": 7},
}
"""Envelope fields of a newer release, unknown to this one."""

HEADERS = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
"""Headers, a field this release knows, kept beside the unknown ones."""

Check = Callable[[PersistedJob, str], Awaitable[None]]
"""Checks, after the move named by its second argument, that the newer fields are still there;
given the copy of the job a pop handed out after that move."""


async def journey(driver: InspectDriver, clock: FakeClock, check: Check) -> None:
    """Move job "a" (already pushed) through every move a worker makes; `check` after each."""
    job = await driver.pop()
    await check(job, "push")

    job.attempts, job.last_error = 2, "boom"
    assert await driver.retry(job)
    job = await driver.pop()
    await check(job, "retry")

    assert await driver.fail(job)
    assert await driver.reload(Channel.FAILED) == 1
    job = await driver.pop()
    await check(job, "fail and reload")

    clock.advance(driver.lease + timedelta(milliseconds=1))
    job = await driver.pop()  # the lease ran out: recovered, an attempt counted, popped again
    await check(job, "lease recovery")

    assert await driver.release(job)
    job = await driver.pop()
    await check(job, "release")

    assert await driver.fail(job)
    assert await driver.retry_job("a")
    job = await driver.pop()
    await check(job, "fail and retry_job")
    assert await driver.ack(job)


# --- stores of one envelope per job -------------------------------------------------------

ENVELOPE_STORES = sorted(set(FACTORIES) - {"sqlite", "postgres"})


@pytest.mark.parametrize("store", ENVELOPE_STORES)
async def test_an_envelope_store_keeps_unknown_fields_through_every_move(
    store: str, clock: FakeClock, tmp_path: Path
) -> None:
    async def check(job: PersistedJob, move: str) -> None:
        assert (job.extra, job.headers) == (EXTRA, HEADERS), f"after {move}"
        assert (job.priority, job.group) == (7, "acme"), f"after {move}"

    async with FACTORIES[store](clock, tmp_path) as driver:
        job = persisted(
            "a", max_attempts=10, priority=7, group="acme", extra=dict(EXTRA), headers=dict(HEADERS)
        )
        await driver.push(job, timedelta(0))

        await journey(inspectable(driver), clock, check)


def inspectable(driver: Driver) -> InspectDriver:
    """Return `driver` as the InspectDriver every corequeue driver is (for `retry_job`)."""
    return cast(InspectDriver, driver)


# --- SQL stores: columns a newer release added --------------------------------------------


async def test_sqlite_leaves_columns_it_does_not_know_untouched(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "jobs.db"
    driver = SQLiteDriver(path, pop_timeout=POP_TIMEOUT, clock=clock)
    await driver.push(persisted("a", max_attempts=10), timedelta(0))  # creates the table
    await asyncio.to_thread(add_sqlite_columns, path)

    async def check(job: PersistedJob, move: str) -> None:
        assert await asyncio.to_thread(read_sqlite_columns, path) == (7, "acme"), f"after {move}"

    await journey(driver, clock, check)
    await driver.close()


def add_sqlite_columns(path: Path) -> None:
    """Add the columns of a newer release to job "a", with values, as that release would."""
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE corequeue_jobs ADD COLUMN rate INTEGER NOT NULL DEFAULT 0")
        db.execute("ALTER TABLE corequeue_jobs ADD COLUMN labels TEXT")
        db.execute("UPDATE corequeue_jobs SET rate = 7, labels = 'acme' WHERE id = 'a'")
    db.close()


def read_sqlite_columns(path: Path) -> tuple[Any, ...]:
    """Return the newer columns of job "a"."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT rate, labels FROM corequeue_jobs WHERE id = 'a'").fetchone()
    db.close()
    return tuple(row)


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema(postgres_dsn()) as name:
        yield name


async def test_postgres_leaves_columns_it_does_not_know_untouched(schema: str) -> None:
    clock = FakeClock()
    dsn = postgres_dsn()
    driver = PostgresDriver(dsn, schema=schema, pop_timeout=POP_TIMEOUT, clock=clock)
    await driver.push(persisted("a", max_attempts=10), timedelta(0))  # creates the table
    jobs = sql.Identifier(schema, "jobs")
    await run_sql(
        dsn,
        sql.SQL("ALTER TABLE {} ADD COLUMN rate integer NOT NULL DEFAULT 0").format(jobs),
        sql.SQL("ALTER TABLE {} ADD COLUMN labels jsonb").format(jobs),
        sql.SQL("""UPDATE {} SET rate = 7, labels = '{{"a": "b"}}' WHERE id = 'a'""").format(jobs),
    )

    async def check(job: PersistedJob, move: str) -> None:
        query = sql.SQL("SELECT rate, labels FROM {} WHERE id = 'a'").format(jobs)
        assert await run_sql(dsn, query) == (7, {"a": "b"}), f"after {move}"

    await journey(driver, clock, check)
    await driver.close()


async def run_sql(dsn: str, *statements: sql.Composed) -> tuple[Any, ...] | None:
    """Run `statements` on a new connection; return the first row of the last, if any."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        for statement in statements:
            cursor = await connection.execute(statement)
        return await cursor.fetchone() if cursor.description else None
