"""Connection pools wait for a free connection, then fail with an error naming their limits.

Redis (standalone, Cluster, Sentinel; async and sync clients) and PostgreSQL (the pool of each
event loop and the sync pool of push_sync). Outcomes only: every push of a burst lands, and a
pool that stays full raises StoreUnavailable with a clear message.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from redis.asyncio import Redis

from corequeue.drivers.base import QueueInfo
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.redis import RedisDriver
from corequeue.drivers.redis.pools import SyncWaitingCluster, WaitingCluster
from corequeue.errors import InvalidOption, StoreUnavailable
from corequeue.job import PersistedJob
from tests.support.driver_postgres import (
    TEST_SCHEMA,
    delete_queue,
    postgres_dsn,
    with_application_name,
)
from tests.support.driver_redis import (
    die_with_parent,
    poll,
    raw_client,
    redis_cluster_url,
    redis_url,
    unique_queue_name,
    wipe,
)

BURST = 200
SHORT = timedelta(milliseconds=50)
PATIENT = timedelta(seconds=30)
"""A pool timeout no burst waits out: the pushes queue for connections, they do not fail."""


@pytest.fixture(params=["standalone", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """The URL of a test server, and whether it is a Cluster."""
    cluster = request.param == "cluster"
    return (redis_cluster_url() if cluster else redis_url()), cluster


@asynccontextmanager
async def redis_driver(url: str, cluster: bool, **options: Any) -> AsyncIterator[RedisDriver]:
    driver = RedisDriver.from_url(url, name=unique_queue_name(), cluster=cluster, **options)
    try:
        yield driver
    finally:
        async with raw_client(url, cluster=cluster) as client:
            await wipe(driver, client)
        await driver.close()


# --- Redis ---------------------------------------------------------------------------------


async def test_redis_pushes_beyond_the_pool_limit_wait_and_all_land(
    redis_target: tuple[str, bool],
) -> None:
    async with redis_driver(*redis_target, max_connections=2, pool_timeout=PATIENT) as driver:
        await asyncio.gather(*(driver.push(_job(n), timedelta(0)) for n in range(BURST)))

        assert await driver.info() == QueueInfo(waiting=BURST)


async def test_redis_sync_pushes_beyond_the_pool_limit_wait_and_all_land(
    redis_target: tuple[str, bool],
) -> None:
    async with redis_driver(*redis_target, max_connections=2, pool_timeout=PATIENT) as driver:
        await _push_sync_from_threads(driver, threads=8, each=25)

        assert await driver.info() == QueueInfo(waiting=200)


async def test_a_full_redis_pool_raises_store_unavailable_naming_its_limits(
    redis_target: tuple[str, bool],
) -> None:
    async with redis_driver(*redis_target, max_connections=1, pool_timeout=SHORT) as driver:
        async with _holding_the_async_pool(driver):
            with pytest.raises(StoreUnavailable) as raised:
                await driver.push(_job(1), timedelta(0))

        assert _REDIS_FULL in str(raised.value)
        assert await driver.info() == QueueInfo()


async def test_a_full_redis_sync_pool_raises_store_unavailable_naming_its_limits(
    redis_target: tuple[str, bool],
) -> None:
    async with redis_driver(*redis_target, max_connections=1, pool_timeout=SHORT) as driver:
        with _holding_the_sync_pool(driver), pytest.raises(StoreUnavailable) as raised:
            await asyncio.to_thread(driver.push_sync, _job(1), timedelta(0))

        assert _REDIS_FULL in str(raised.value)
        await asyncio.to_thread(driver.push_sync, _job(2), timedelta(0))  # free again
        assert await driver.info() == QueueInfo(waiting=1)


async def test_sentinel_pools_wait_too(tmp_path: Path) -> None:
    async with _sentinel(tmp_path) as url:
        driver = RedisDriver.from_url(url, name=unique_queue_name(), max_connections=1)
        try:
            await asyncio.gather(*(driver.push(_job(n), timedelta(0)) for n in range(50)))
            await _push_sync_from_threads(driver, threads=4, each=10, first=50)

            assert await driver.info() == QueueInfo(waiting=90)
        finally:
            async with raw_client(redis_url()) as client:
                await wipe(driver, client)
            await driver.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
        ({"pool_timeout": timedelta(0)}, "pool_timeout"),
    ],
)
def test_redis_pool_limits_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        RedisDriver.from_url("redis://localhost:6379/0", **options)


# --- PostgreSQL ----------------------------------------------------------------------------


@asynccontextmanager
async def postgres_driver(dsn: str = "", **options: Any) -> AsyncIterator[PostgresDriver]:
    dsn, name = dsn or postgres_dsn(), unique_queue_name()
    driver = PostgresDriver(dsn, name=name, schema=TEST_SCHEMA, **options)
    try:
        yield driver
    finally:
        await driver.close()
        await delete_queue(dsn, TEST_SCHEMA, name)


async def test_postgres_pushes_beyond_the_pool_limit_wait_and_all_land() -> None:
    async with postgres_driver(pool_max_size=2, pool_timeout=PATIENT) as driver:
        await asyncio.gather(*(driver.push(_job(n), timedelta(0)) for n in range(BURST)))
        await _push_sync_from_threads(driver, threads=8, each=25, first=BURST)

        assert await driver.info() == QueueInfo(waiting=BURST + 200)


async def test_a_full_postgres_pool_raises_store_unavailable_naming_its_limits() -> None:
    async with postgres_driver(pool_max_size=1, pool_timeout=timedelta(milliseconds=100)) as driver:
        async with driver._connection():
            with pytest.raises(StoreUnavailable) as raised:
                await driver.push(_job(1), timedelta(0))

        assert _POSTGRES_FULL in str(raised.value)
        assert await driver.info() == QueueInfo()


async def test_a_full_postgres_sync_pool_raises_store_unavailable_naming_its_limits() -> None:
    async with postgres_driver(pool_max_size=1, pool_timeout=timedelta(milliseconds=100)) as driver:
        await asyncio.to_thread(driver.push_sync, _job(1), timedelta(0))  # opens the sync pool
        with driver._sync_pool.connection(), pytest.raises(StoreUnavailable) as raised:
            await asyncio.to_thread(driver.push_sync, _job(2), timedelta(0))

        assert _POSTGRES_FULL in str(raised.value)
        assert await driver.info() == QueueInfo(waiting=1)


async def test_a_postgres_sync_push_rides_out_connections_the_server_dropped() -> None:
    application = f"cq-{uuid.uuid4().hex[:12]}"
    async with postgres_driver(with_application_name(postgres_dsn(), application)) as driver:
        await asyncio.to_thread(driver.push_sync, _job(1), timedelta(0))  # opens the sync pool
        async with await psycopg.AsyncConnection.connect(postgres_dsn()) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (application,),
            )

        await asyncio.to_thread(driver.push_sync, _job(2), timedelta(0))

        assert await driver.info() == QueueInfo(waiting=2)


# --- helpers -------------------------------------------------------------------------------

_REDIS_FULL = (
    "all 1 connections of the pool are in use (RedisDriver max_connections=1, pool_timeout=0.05 s)"
)
_POSTGRES_FULL = (
    "all 1 connections of the pool are in use (PostgresDriver pool_max_size=1, pool_timeout=0.1 s)"
)


def _job(n: int) -> PersistedJob:
    return PersistedJob(id=f"job-{n}", type="tests.Job", value=b"1")


async def _push_sync_from_threads(
    driver: RedisDriver | PostgresDriver, *, threads: int, each: int, first: int = 0
) -> None:
    """Push `threads * each` jobs with push_sync, from that many threads at once."""

    def push(start: int) -> None:
        for n in range(start, start + each):
            driver.push_sync(_job(n), timedelta(0))

    workers = [threading.Thread(target=push, args=(first + i * each,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    await asyncio.to_thread(_join_all, workers)


@asynccontextmanager
async def _holding_the_async_pool(driver: RedisDriver) -> AsyncIterator[None]:
    """Hold every connection (or turn) of the driver's async client for the block."""
    main = (await driver._clients.current()).main
    if isinstance(main, WaitingCluster):
        async with main.turn():
            yield
        return
    assert isinstance(main, Redis)
    pool = main.connection_pool
    # redis-py leaves the async get_connection unannotated.
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        await pool.release(connection)


@contextmanager
def _holding_the_sync_pool(driver: RedisDriver) -> Iterator[None]:
    """Hold every connection (or turn) of the driver's sync client for the block."""
    client = driver._sync.current()
    if isinstance(client, SyncWaitingCluster):
        with client.turn():
            yield
        return
    assert isinstance(client, redis.Redis)
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        yield
    finally:
        pool.release(connection)


@asynccontextmanager
async def _sentinel(tmp_path: Path) -> AsyncIterator[str]:
    """Run a Sentinel watching the standalone test server; yield the driver URL through it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    host, master_port = redis_url().removeprefix("redis://").split("/")[0].split(":")
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor cq-pools {host} {master_port} 1\n"
    )
    sentinel = await asyncio.create_subprocess_exec(
        "redis-server", str(config), "--sentinel",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=die_with_parent,  # a killed test run leaves no sentinel behind
    )  # fmt: skip
    try:
        await poll(lambda: _knows_the_master(port), 20.0)
        yield f"redis+sentinel://127.0.0.1:{port}/cq-pools/0"
    finally:
        sentinel.terminate()
        await sentinel.wait()


async def _knows_the_master(port: int) -> bool:
    try:
        async with raw_client(f"redis://127.0.0.1:{port}") as sentinel:
            assert isinstance(sentinel, Redis)
            return bool(await sentinel.sentinel_get_master_addr_by_name("cq-pools"))
    except Exception:
        return False


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()
