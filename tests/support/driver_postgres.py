"""Contract-suite factory for the PostgreSQL driver: a fresh queue on the test server.

Every test gets its own queue name in one shared schema (so the suite also shows that queues of
a schema stay apart); its rows are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo, sql

from corequeue.drivers.postgres import PostgresDriver
from corequeue.testing import FakeClock
from tests.support.drivers import POP_TIMEOUT, AsyncDriverIterator, DriverFactory
from tests.support.servers import POSTGRES_DSN_VAR, server_url

POSTGRES_DATA_VAR = "COREQUEUE_TEST_POSTGRES_DATA"
POSTGRES_BIN_VAR = "COREQUEUE_TEST_POSTGRES_BIN"

TEST_SCHEMA = "corequeue_test"
"""The schema the contract suite's queues live in."""


def postgres_dsn() -> str:
    """Return the test server's DSN, or skip (locally) / fail (in CI) without one."""
    return server_url(POSTGRES_DSN_VAR)


def unique_queue_name() -> str:
    """Return a queue name no other test uses."""
    return f"test-{uuid.uuid4().hex}"


async def delete_queue(dsn: str, schema: str, name: str) -> None:
    """Delete every row of queue `name` in `schema`."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        table = sql.Identifier(schema, "jobs")
        cursor = await connection.execute("SELECT to_regclass(%s)", (table.as_string(None),))
        found = await cursor.fetchone()
        if found and found[0]:  # no table yet: the test never used its driver
            await connection.execute(
                sql.SQL("DELETE FROM {} WHERE queue = %s").format(table), (name,)
            )


@asynccontextmanager
async def postgres(clock: FakeClock, tmp_path: Path) -> AsyncDriverIterator:
    dsn = postgres_dsn()
    name = unique_queue_name()
    driver = PostgresDriver(
        dsn, name=name, schema=TEST_SCHEMA, pop_timeout=POP_TIMEOUT, clock=clock
    )
    try:
        yield driver
    finally:
        await driver.close()
        await delete_queue(dsn, TEST_SCHEMA, name)


FACTORIES: dict[str, DriverFactory] = {"postgres": postgres}


# --- helpers for the PostgreSQL-only tests ------------------------------------------------


def with_application_name(dsn: str, application_name: str) -> str:
    """Return `dsn` with an application name, to find its connections in pg_stat_activity."""
    return conninfo.make_conninfo(dsn, application_name=application_name)


@asynccontextmanager
async def fresh_schema(dsn: str) -> AsyncIterator[str]:
    """Yield the name of a schema that does not exist yet; drop it afterwards."""
    schema = f"cq_{uuid.uuid4().hex[:16]}"
    try:
        yield schema
    finally:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            await connection.execute(drop)


async def insert_version_1_row(
    connection: psycopg.AsyncConnection[Any], schema: str, job_id: str, state: int, due_ms: int
) -> None:
    """Insert a job of queue `jobs` as a release with schema version 1 stored it (no token)."""
    query = sql.SQL(
        "INSERT INTO {} (queue, id, state, due_ms, type, value, handle_timeout_ms, backoff_ms, "
        "attempts, max_attempts, last_error) "
        "VALUES ('jobs', %s, %s, %s, 'tests.Job', %s, 60000, 0, 1, 3, NULL)"
    ).format(sql.Identifier(schema, "jobs"))
    await connection.execute(query, (job_id, state, due_ms, f"v1 {job_id}".encode()))


async def fetch_one(dsn: str, query: str, *params: Any) -> tuple[Any, ...]:
    """Run `query` on a new connection and return its first row."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        cursor = await connection.execute(query, params)
        row = await cursor.fetchone()
    assert row is not None
    return row


async def server_now_ms(dsn: str) -> int:
    """Return the database server's clock in milliseconds since the Unix epoch."""
    query = "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    (now,) = await fetch_one(dsn, query)
    return int(now)


async def wait_until_connections(
    dsn: str, application_name: str, count: int, deadline_seconds: float
) -> None:
    """Return once `count` connections are named `application_name`; fail at the deadline."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    await _poll(dsn, query, application_name, lambda found: found == count, deadline_seconds)


async def wait_until_listening(dsn: str, application_name: str, deadline_seconds: float) -> None:
    """Return once a connection named `application_name` is LISTENing; fail at the deadline."""
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = %s AND query LIKE 'LISTEN %%'"
    )
    await _poll(dsn, query, application_name, lambda found: found > 0, deadline_seconds)


async def _poll(
    dsn: str, query: str, parameter: str, done: Callable[[int], bool], deadline_seconds: float
) -> None:
    """Run a count query until `done` accepts its result; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    found = None
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        while loop.time() < deadline:
            cursor = await connection.execute(query, (parameter,))
            row = await cursor.fetchone()
            found = row[0] if row else None
            if found is not None and done(found):
                return
    raise AssertionError(f"{query} with {parameter!r} still gave {found} at the deadline")


async def restart_postgres() -> None:
    """Restart the test server (`pg_ctl restart -m fast`), as the postgres user when root."""
    data = Path(server_url(POSTGRES_DATA_VAR))
    pg_ctl = str(Path(server_url(POSTGRES_BIN_VAR)) / "pg_ctl")
    command = [pg_ctl, "-D", str(data), "-l", str(data.parent / "postgres.log")]
    command += ["-w", "-m", "fast", "restart"]
    if os.geteuid() == 0:
        command = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"pg_ctl restart failed: {errors.decode(errors='replace')}")
