"""Contract-suite factories for the Redis driver: standalone redis-server and Redis Cluster.

Each test gets a queue of its own (a random name) on the shared server, and every key of that
queue is deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from corequeue.drivers.base import Channel
from corequeue.drivers.redis import RedisDriver
from corequeue.testing import FakeClock
from tests.support.drivers import POP_TIMEOUT, AsyncDriverIterator, DriverFactory
from tests.support.servers import REDIS_CLUSTER_URL_VAR, REDIS_URL_VAR, server_url


def unique_queue_name() -> str:
    """Return a queue name no other test uses."""
    return f"test-{uuid.uuid4().hex}"


@asynccontextmanager
async def raw_client(url: str, *, cluster: bool = False) -> AsyncIterator[Redis | RedisCluster]:
    """Yield a plain redis-py client on `url`, for looking behind the driver's back."""
    client: Redis | RedisCluster = RedisCluster.from_url(url) if cluster else Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def wipe(driver: RedisDriver, client: Redis | RedisCluster) -> None:
    """Delete every key of the driver's queue: its jobs, channels and bookkeeping keys."""
    for channel in Channel:
        await driver.flush(channel)
    keys = driver.keys
    await client.delete(*keys.all())


@asynccontextmanager
async def _fresh(url: str, clock: FakeClock, *, cluster: bool) -> AsyncIterator[RedisDriver]:
    driver = RedisDriver.from_url(
        url, name=unique_queue_name(), cluster=cluster, pop_timeout=POP_TIMEOUT, clock=clock
    )
    try:
        yield driver
    finally:
        async with raw_client(url, cluster=cluster) as client:
            await wipe(driver, client)
        await driver.close()


@asynccontextmanager
async def redis(clock: FakeClock, tmp_path: Path) -> AsyncDriverIterator:
    async with _fresh(server_url(REDIS_URL_VAR), clock, cluster=False) as driver:
        yield driver


@asynccontextmanager
async def redis_cluster(clock: FakeClock, tmp_path: Path) -> AsyncDriverIterator:
    async with _fresh(server_url(REDIS_CLUSTER_URL_VAR), clock, cluster=True) as driver:
        yield driver


FACTORIES: dict[str, DriverFactory] = {"redis": redis, "redis_cluster": redis_cluster}
