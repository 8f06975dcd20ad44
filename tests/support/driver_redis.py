"""Contract-suite factories for the Redis driver: standalone redis-server and Redis Cluster.

Each test gets a queue of its own (a random name) on the shared server, and every key of that
queue is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from corequeue.drivers.redis import RedisDriver
from corequeue.testing import FakeClock
from tests.support.drivers import POP_TIMEOUT, AsyncDriverIterator, DriverFactory
from tests.support.servers import REDIS_CLUSTER_URL_VAR, REDIS_URL_VAR, server_url


def redis_url() -> str:
    """Return the standalone test server's URL (skip or fail when there is none)."""
    return server_url(REDIS_URL_VAR)


def redis_cluster_url() -> str:
    """Return the URL of a node of the test Redis Cluster (skip or fail when there is none)."""
    return server_url(REDIS_CLUSTER_URL_VAR)


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
    """Delete every key of the driver's queue: its jobs, channels and bookkeeping keys.

    Store layout 2 keeps all of a queue in `driver.keys.all()` (a pop's wake-up list expires
    by itself); a test that writes layout 1 keys deletes them itself.
    """
    await client.delete(*driver.keys.all())


async def server_now_us(client: Redis | RedisCluster) -> int:
    """Return the Redis server's clock in microseconds."""
    seconds, micros = await client.time()
    return int(seconds) * 1_000_000 + int(micros)


async def stored_keys(client: Redis, driver: RedisDriver) -> set[str]:
    """Return every key of the driver's queue that exists on a standalone server."""
    tag = driver.keys.waiting.removesuffix("waiting")
    pattern = tag.replace("[", "\\[").replace("?", "\\?").replace("*", "\\*") + "*"
    return {key.decode() async for key in client.scan_iter(match=pattern, count=1000)}


async def poll(check: Callable[[], Awaitable[bool]], deadline_seconds: float) -> None:
    """Return once `check()` is true; fail after `deadline_seconds`."""
    async with asyncio.timeout(deadline_seconds):
        while not await check():
            await asyncio.sleep(0.01)


async def blocked_clients(client: Redis, name_prefix: str) -> int:
    """Return how many connections named `name_prefix...` wait in a blocking command."""
    clients = await client.client_list()
    return sum(
        1 for c in clients if c.get("name", "").startswith(name_prefix) and c.get("cmd") == "blpop"
    )


def die_with_parent() -> None:
    """Make the calling (child) process get SIGTERM when its parent dies (Linux).

    For `preexec_fn` of helper processes, so a test run that is killed leaves none behind.
    """
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


async def restart_redis() -> None:
    """Shut the standalone test server down (AOF flushed) and start it again, same port and dir."""
    port = os.environ["COREQUEUE_TEST_REDIS_PORT"]
    folder = os.environ["COREQUEUE_TEST_REDIS_DIR"]
    await _run("redis-cli", "-p", port, "shutdown")
    await _run(
        *("redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", folder),
        *("--daemonize", "yes", "--pidfile", f"{folder}/redis.pid"),
        *("--logfile", f"{folder}/redis.log", "--save", ""),
        *("--appendonly", "yes", "--appendfsync", "everysec"),
    )
    async with raw_client(f"redis://127.0.0.1:{port}/0") as client:

        async def answers() -> bool:
            try:
                return bool(await client.ping())
            except Exception:
                return False

        await poll(answers, 30.0)


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    await process.wait()


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
