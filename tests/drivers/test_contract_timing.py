"""The timing part of the Driver contract (corequeue.testing.contract_timing) on every driver.

The `driver` and `clock` fixtures come from conftest.py; `store_timed` builds each driver with
no clock, so it reads its store's own clock, and reads that clock the way the store does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import psycopg
import pytest

from corequeue.drivers.base import Driver
from corequeue.testing.contract_timing import *  # noqa: F403 (the suite's tests, collected here)
from corequeue.testing.contract_timing import StoreTimed
from tests.drivers.conftest import FACTORIES
from tests.support.driver_postgres import postgres_dsn
from tests.support.driver_redis import raw_client, redis_cluster_url, redis_url

StoreClock = Callable[[Driver], AbstractAsyncContextManager[Callable[[], Awaitable[int]]]]


@pytest.fixture(params=sorted(FACTORIES))
async def store_timed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreTimed]:
    # Every factory hands its clock to the driver, and a driver given None reads its store's.
    on_store_clock = FACTORIES[request.param](None, tmp_path)  # type: ignore[arg-type]
    async with on_store_clock as driver, STORE_CLOCKS[request.param](driver) as now_us:
        yield StoreTimed(driver, now_us)


@asynccontextmanager
async def machine_clock(driver: Driver) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """Yield a reader of this machine's clock: the store clock of an embedded driver."""

    async def now_us() -> int:
        return time.time_ns() // 1_000

    yield now_us


@asynccontextmanager
async def postgres_clock(driver: Driver) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """Yield a reader of the PostgreSQL server's clock, over a connection of its own."""
    query = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
    async with await psycopg.AsyncConnection.connect(postgres_dsn(), autocommit=True) as db:

        async def now_us() -> int:
            row = await (await db.execute(query)).fetchone()
            assert row is not None
            return int(row[0])

        yield now_us


def redis_clock(url: Callable[[], str], *, cluster: bool) -> StoreClock:
    """Return a reader of the Redis server's TIME.

    On the test Cluster every node runs on this machine, so any node's TIME is the clock of
    the node holding the queue.
    """

    @asynccontextmanager
    async def clock(driver: Driver) -> AsyncIterator[Callable[[], Awaitable[int]]]:
        async with raw_client(url(), cluster=cluster) as client:

            async def now_us() -> int:
                seconds, micros = await client.time()
                return int(seconds) * 1_000_000 + int(micros)

            yield now_us

    return clock


STORE_CLOCKS: dict[str, StoreClock] = {
    "in_process": machine_clock,
    "sqlite": machine_clock,
    "postgres": postgres_clock,
    "redis": redis_clock(redis_url, cluster=False),
    "redis_cluster": redis_clock(redis_cluster_url, cluster=True),
}
