"""The periodic part of the Driver contract (corequeue.testing.contract_periodic) on every driver.

`driver` is conftest.py's, and also forgets its schedules afterwards (PostgreSQL queues share a
schema that outlives the test); `driver_twin` is a second driver on the same store and queue,
as a second worker process has. The last tests build drivers with no clock, which read their
store's own clock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from corequeue.drivers.base import Driver
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.redis import RedisDriver
from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.periodic.store import SlotStore
from corequeue.testing import FakeClock
from corequeue.testing.contract_periodic import *  # noqa: F403 (the suite's tests, collected here)
from corequeue.testing.contract_periodic import enqueue
from tests.drivers.conftest import FACTORIES
from tests.support.driver_postgres import TEST_SCHEMA, postgres_dsn
from tests.support.driver_redis import redis_cluster_url, redis_url
from tests.support.drivers import POP_TIMEOUT

SERVER_CLOCKED = {"redis", "redis_cluster", "postgres"}
"""The drivers that read their server's clock when given none."""


@pytest.fixture(params=sorted(FACTORIES))
async def driver(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Driver]:
    async with FACTORIES[request.param](clock, tmp_path) as fresh:
        yield fresh
        for name in await fresh.schedule_slots():
            await fresh.forget_schedule(name)


@pytest.fixture
async def driver_twin(
    request: pytest.FixtureRequest, driver: Driver, clock: FakeClock
) -> AsyncIterator[Driver]:
    """Yield another driver on the store and queue of `driver` (itself when in-process)."""
    kind = request.node.callspec.params["driver"]
    if kind == "in_process":
        yield driver
        return
    twin = _twin_of(kind, driver, clock)
    try:
        yield twin
    finally:
        await twin.close()


def _twin_of(kind: str, driver: Driver, clock: FakeClock) -> Driver:
    if isinstance(driver, SQLiteDriver):
        return SQLiteDriver(driver.path, driver.name, pop_timeout=POP_TIMEOUT, clock=clock)
    if isinstance(driver, PostgresDriver):
        return PostgresDriver(
            postgres_dsn(), driver.name, TEST_SCHEMA, pop_timeout=POP_TIMEOUT, clock=clock
        )
    if isinstance(driver, RedisDriver):
        cluster = kind == "redis_cluster"
        url = redis_cluster_url() if cluster else redis_url()
        return RedisDriver.from_url(
            url, driver.name, cluster=cluster, pop_timeout=POP_TIMEOUT, clock=clock
        )
    raise AssertionError(f"no twin for {driver!r}")


def test_every_driver_is_a_slot_store(driver: Driver) -> None:
    store: SlotStore = driver  # checked by mypy as well

    assert isinstance(store, SlotStore)


@pytest.fixture(params=sorted(FACTORIES))
def store_clocked(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AbstractAsyncContextManager[Driver]:
    """Return a factory's driver built with no clock: it reads its store's own clock."""
    return FACTORIES[request.param](None, tmp_path)  # type: ignore[arg-type]


async def test_without_a_clock_the_store_clock_decides(
    store_clocked: AbstractAsyncContextManager[Driver], request: pytest.FixtureRequest
) -> None:
    now_ms = time.time_ns() // 1_000_000
    hour_ms = 3_600_000

    async with store_clocked as driver:
        try:
            ahead = await enqueue(driver, "s", now_ms + hour_ms)
            behind = await enqueue(driver, "s", now_ms - hour_ms)
            slots = await driver.schedule_slots()
            server_clocked = driver.clock is None
        finally:
            await driver.forget_schedule("s")

    assert (ahead, behind, slots) == (False, True, {"s": now_ms - hour_ms})
    assert server_clocked == (request.node.callspec.params["store_clocked"] in SERVER_CLOCKED)
