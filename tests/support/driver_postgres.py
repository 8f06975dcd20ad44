"""Contract-suite factory for the PostgreSQL driver: a fresh queue on the test server.

Every test gets its own queue name in one shared schema (so the suite also shows that queues of
a schema stay apart); its rows are deleted afterwards.
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from corequeue.drivers.postgres import PostgresDriver
from corequeue.testing import FakeClock
from tests.support.drivers import POP_TIMEOUT, AsyncDriverIterator, DriverFactory
from tests.support.servers import POSTGRES_DSN_VAR, server_url

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
