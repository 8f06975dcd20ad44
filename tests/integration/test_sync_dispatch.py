"""dispatch_sync from many threads, on every driver: each job stored once, no loop thread.

Outcomes only (every job lands once, pops wake, errors are clear): speed lives in the
benchmark.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import redis.cluster
from redis import exceptions as redis_errors
from redis.asyncio import Redis

import corequeue as cq
from corequeue.drivers.base import Driver, QueueInfo
from corequeue.drivers.derived import BatchFromSingle
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.redis import RedisDriver
from corequeue.drivers.redis import sync as redis_sync
from corequeue.job import PersistedJob
from tests.integration.conftest import eventually
from tests.support.driver_postgres import fresh_schema, postgres_dsn
from tests.support.driver_redis import (
    raw_client,
    redis_cluster_url,
    redis_url,
    unique_queue_name,
    wipe,
)

THREADS = 8
PER_THREAD = 500
LONG = timedelta(seconds=60)
"""A pop timeout and poll interval no test waits out: only a wake-up can end the wait."""


async def test_dispatch_sync_from_eight_threads_lands_every_job_exactly_once(
    driver: Driver,
) -> None:
    queue = cq.Queue(driver)
    start = threading.Barrier(THREADS)
    batches: list[list[str]] = [[] for _ in range(THREADS)]

    def dispatch(thread: int) -> None:
        start.wait()
        first = thread * PER_THREAD
        batches[thread] = [queue.dispatch_sync(n) for n in range(first, first + PER_THREAD)]

    threads = [threading.Thread(target=dispatch, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(_join_all, threads)

    ids = [job_id for batch in batches for job_id in batch]
    assert len(set(ids)) == THREADS * PER_THREAD
    assert await queue.info() == QueueInfo(waiting=THREADS * PER_THREAD)
    popped = await _pop_every(driver, len(ids))
    assert Counter(job.id for job in popped) == Counter(ids)
    values = Counter(queue.codec.decode(job.value, int) for job in popped)
    assert values == Counter(range(THREADS * PER_THREAD))


async def test_dispatch_sync_starts_no_event_loop_thread(driver: Driver) -> None:
    queue = cq.Queue(driver)

    ids = await asyncio.to_thread(lambda: [queue.dispatch_sync(n) for n in range(20)])

    assert not [t.name for t in threading.enumerate() if t.name.startswith("corequeue-sync-")]
    assert await queue.info() == QueueInfo(waiting=len(ids))


async def test_dispatch_sync_keeps_delays_and_idempotent_ids(driver: Driver) -> None:
    queue = cq.Queue(driver)
    later = cq.adjust(1, defer=timedelta(hours=1), unique_id="once")

    ids = await asyncio.to_thread(lambda: [queue.dispatch_sync(later) for _ in range(3)])

    assert ids == ["once"] * 3
    assert await queue.info() == QueueInfo(delayed=1)


async def test_a_sync_push_wakes_a_waiting_in_process_pop() -> None:
    driver = cq.InProcessDriver(LONG)

    async with asyncio.timeout(20):
        pop = asyncio.create_task(driver.pop())
        await eventually(lambda: _true(bool(driver._pushed._waiters)))  # the pop waits
        await asyncio.to_thread(driver.push_sync, _job("woken"), timedelta(0))
        job = await pop

    assert job.id == "woken"


async def test_a_sync_push_wakes_a_waiting_sqlite_pop(tmp_path: Path) -> None:
    driver = cq.SQLiteDriver(tmp_path / "jobs.db", pop_timeout=LONG, poll_interval=LONG)
    try:
        async with asyncio.timeout(20):
            pop = asyncio.create_task(driver.pop())
            await eventually(lambda: _true(bool(driver._pushed._waiters)))  # the pop waits
            await asyncio.to_thread(driver.push_sync, _job("woken"), timedelta(0))
            job = await pop
    finally:
        await driver.close()

    assert job.id == "woken"


@pytest.mark.parametrize("driver_name", ["in_process", "sqlite", "redis"])
async def test_push_sync_refuses_unknown_options(driver_name: str, tmp_path: Path) -> None:
    driver: Driver
    if driver_name == "in_process":
        driver = cq.InProcessDriver()
    elif driver_name == "sqlite":
        driver = cq.SQLiteDriver(tmp_path / "jobs.db")
    else:
        driver = RedisDriver.from_url(redis_url(), name=unique_queue_name())

    with pytest.raises(cq.InvalidOption, match="colour"):
        driver.push_sync(_job("x"), timedelta(0), colour="red")
    await driver.close()


# --- PostgreSQL ----------------------------------------------------------------------------


async def test_postgres_push_sync_refuses_an_async_connection() -> None:
    dsn = postgres_dsn()
    driver = PostgresDriver(dsn, name=unique_queue_name())
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        with pytest.raises(cq.InvalidOption, match="not an AsyncConnection"):
            driver.push_sync(_job("x"), timedelta(0), connection=connection)
    await driver.close()


async def test_postgres_push_sync_creates_the_schema_on_first_use() -> None:
    dsn = postgres_dsn()
    async with fresh_schema(dsn) as schema:
        driver = PostgresDriver(dsn, name="jobs", schema=schema)
        try:
            await asyncio.to_thread(driver.push_sync, _job("first"), timedelta(0))

            assert await driver.info() == QueueInfo(waiting=1)
        finally:
            await driver.close()


# --- Redis clients given by the caller -----------------------------------------------------


async def test_a_redis_driver_given_a_sync_client_pushes_with_it() -> None:
    url = redis_url()
    client, sync_client = Redis.from_url(url), redis.Redis.from_url(url)
    driver = RedisDriver(client, name=unique_queue_name(), sync_client=sync_client)
    try:
        await asyncio.to_thread(driver.push_sync, _job("given"), timedelta(0))

        assert await driver.info() == QueueInfo(waiting=1)
        assert not [t for t in threading.enumerate() if t.name.startswith("corequeue-sync-")]
    finally:
        await wipe(driver, client)
        await driver.close()
        await client.aclose()
        sync_client.close()


async def test_a_redis_driver_given_only_async_clients_pushes_on_a_loop_thread() -> None:
    url = redis_url()
    client = Redis.from_url(url)
    driver = RedisDriver(client, name=unique_queue_name())
    try:
        await asyncio.to_thread(driver.push_sync, _job("given"), timedelta(0))

        assert await driver.info() == QueueInfo(waiting=1)
    finally:
        await wipe(driver, client)
        await driver.close()
        await client.aclose()
    assert not [t for t in threading.enumerate() if t.name.startswith("corequeue-sync-")]


# --- Redis Cluster: the sync client follows a reshard of the queue's slot ------------------


async def test_the_sync_cluster_path_sends_asking_and_the_command_on_one_connection() -> None:
    driver = RedisDriver.from_url(redis_cluster_url(), name=unique_queue_name(), cluster=True)
    client = await asyncio.to_thread(driver._sync.current)
    assert isinstance(client, redis.cluster.RedisCluster)
    owner = client.nodes_manager.get_node_from_slot(driver.keys.slot)
    ask = redis_errors.AskError(f"{driver.keys.slot} {owner.host}:{owner.port}")

    answer = redis_sync._execute_asking(client, ask, ("EXISTS", driver.keys.jobs))

    assert answer == 0
    await driver.close()


async def test_the_sync_cluster_path_retries_tryagain(monkeypatch: pytest.MonkeyPatch) -> None:
    url = redis_cluster_url()
    driver = RedisDriver.from_url(url, name=unique_queue_name(), cluster=True)
    real, answers = redis_sync._execute_in_slot, 0

    def half_moved(cluster: Any, slot: int, args: tuple[Any, ...]) -> Any:
        nonlocal answers
        answers += 1
        if answers <= 2:
            raise redis_errors.TryAgainError("TRYAGAIN keys of the slot are moving")
        return real(cluster, slot, args)

    monkeypatch.setattr(redis_sync, "_execute_in_slot", half_moved)
    await asyncio.to_thread(driver.push_sync, _job("moved"), timedelta(0))

    assert answers == 3
    assert await driver.info() == QueueInfo(waiting=1)
    async with raw_client(url, cluster=True) as raw:
        await wipe(driver, raw)
    await driver.close()


# --- a driver of one's own -----------------------------------------------------------------


class _OwnDriver(BatchFromSingle):
    """Pushes into an in-process driver, noting the loop of every push."""

    def __init__(self) -> None:
        self.inner = cq.InProcessDriver()
        self.loops: set[asyncio.AbstractEventLoop] = set()

    async def push(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        self.loops.add(asyncio.get_running_loop())
        await self.inner.push(job, delay, **options)


async def test_batch_from_single_derives_push_sync_on_one_private_loop() -> None:
    driver = _OwnDriver()

    def push(first: int) -> None:
        for n in range(first, first + 50):
            driver.push_sync(_job(str(n)), timedelta(0))

    await asyncio.gather(*(asyncio.to_thread(push, i * 50) for i in range(4)))

    assert await driver.inner.info() == QueueInfo(waiting=200)
    assert len(driver.loops) == 1
    assert asyncio.get_running_loop() not in driver.loops
    assert [t for t in threading.enumerate() if t.name == "corequeue-sync-_OwnDriver"]
    await driver.close()
    assert not [t for t in threading.enumerate() if t.name == "corequeue-sync-_OwnDriver"]


# --- helpers -------------------------------------------------------------------------------


async def _true(value: bool) -> bool:
    return value


def _job(job_id: str) -> PersistedJob:
    return PersistedJob(id=job_id, type="tests.Job", value=b"1")


async def _pop_every(driver: Driver, count: int) -> Sequence[PersistedJob]:
    popped: list[PersistedJob] = []
    async with asyncio.timeout(60):
        while len(popped) < count:
            try:
                popped += await driver.pop_many(min(500, count - len(popped)))
            except cq.QueueEmpty:
                continue
    return popped


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()
