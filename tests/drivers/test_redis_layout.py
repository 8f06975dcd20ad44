"""Redis store layout 2: envelopes in the `jobs` hash, ids never dropped, and `migrate()` from 1.

Layout 1 data is written by hand, key by key, as the earlier release's scripts wrote it: an
envelope (wire format v1) per string key `<tag>:job:<id>`, and millisecond scores.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from corequeue.cli import main
from corequeue.drivers.base import LEASE_EXPIRED, Channel, QueueInfo
from corequeue.drivers.redis import RedisDriver, RedisKeys
from corequeue.drivers.redis import driver as driver_module
from corequeue.drivers.redis.views import LOST_TYPE
from corequeue.errors import DriverError, QueueEmpty
from corequeue.job import PersistedJob
from corequeue.testing import FakeClock
from tests.support.driver_redis import (
    raw_client,
    redis_cluster_url,
    redis_url,
    unique_queue_name,
    wipe,
)
from tests.support.drivers import POP_TIMEOUT
from tests.support.jobs import persisted

TOKEN = "0123456789abcdef01234567"
"""The reservation token a worker of the earlier release holds for a reserved job."""


@dataclass
class Store:
    """A queue on a real server: a driver on a FakeClock, a raw client, the layout 1 keys made."""

    driver: RedisDriver
    client: Redis | RedisCluster
    clock: FakeClock
    written: list[str] = field(default_factory=list)

    @property
    def keys(self) -> RedisKeys:
        return self.driver.keys

    async def old_job(self, channel: Channel, job_id: str, score_ms: int, **fields: int) -> None:
        """Store job `job_id` in `channel` as layout 1 did: a v1 envelope in its own key."""
        key = self.keys.layout1_job(job_id)
        await self.client.set(key, v1_envelope(job_id, **fields))
        self.written.append(key)
        if channel is Channel.WAITING:
            score_ms = int(await self.client.incr(self.keys.seq))
        await self.client.zadd(getattr(self.keys, channel.value), {job_id: score_ms})


def v1_envelope(job_id: str, attempts: int = 1, max_attempts: int = 3) -> bytes:
    """Return the envelope the earlier release wrote for a job (wire format v1)."""
    envelope = {
        "v": 1,
        "id": job_id,
        "type": "tests.Job",
        "handle_timeout_ms": 60_000,
        "attempts": attempts,
        "max_attempts": max_attempts,
        "value": json.dumps({"n": job_id}),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


@pytest.fixture(params=["redis", "redis_cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    cluster = request.param == "redis_cluster"
    url = redis_cluster_url() if cluster else redis_url()
    clock = FakeClock()
    driver = RedisDriver.from_url(
        url, name=unique_queue_name(), cluster=cluster, pop_timeout=POP_TIMEOUT, clock=clock
    )
    async with raw_client(url, cluster=cluster) as client:
        made = Store(driver, client, clock)
        try:
            yield made
        finally:
            await wipe(driver, client)
            for key in made.written:
                await client.delete(key)
            await driver.close()


# --- layout 2: no id is ever dropped -------------------------------------------------------


async def test_a_popped_id_without_an_envelope_is_parked_in_failed_and_shown(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    driver = store.driver
    await driver.push_many([(persisted("gone"), timedelta(0)), (persisted("kept"), timedelta(0))])
    await store.client.hdel(store.keys.jobs, "gone")  # behind the queue's back

    with caplog.at_level(logging.ERROR):
        assert (await driver.pop()).id == "kept"

    assert await driver.info() == QueueInfo(reserved=1, failed=1)
    shown = await driver.get_job("gone")
    assert shown is not None
    assert (shown.channel, shown.job.type) == (Channel.FAILED, LOST_TYPE)
    assert "envelope was missing when it was popped" in (shown.job.last_error or "")
    assert [view.job.id for view in await driver.list_jobs(Channel.FAILED)] == ["gone"]
    assert "job gone moved to failed" in caplog.text


async def test_a_lost_job_stays_in_failed_on_reload_and_a_new_push_replaces_it(
    store: Store,
) -> None:
    driver = store.driver
    await driver.push(persisted("gone"), timedelta(0))
    await store.client.hdel(store.keys.jobs, "gone")
    with pytest.raises(QueueEmpty):
        await driver.pop()
    await driver.push(persisted("good", max_attempts=1), timedelta(0))
    await driver.fail(await driver.pop())

    assert await driver.reload(Channel.FAILED) == 1  # the good one; the lost one is passed over
    assert await driver.retry_job("gone") is False
    assert await driver.info() == QueueInfo(waiting=1, failed=1)
    assert (await driver.pop()).id == "good"

    await driver.push(persisted("gone"), timedelta(0))
    assert (await driver.pop()).id == "gone"
    assert await driver.info() == QueueInfo(reserved=2)


async def test_a_reload_passes_over_many_lost_jobs_once(store: Store) -> None:
    driver = store.driver
    names = [f"gone{n:04}" for n in range(1_200)]  # more than one script's batch
    await driver.push_many([(persisted(name), timedelta(0)) for name in names])
    await store.client.hdel(store.keys.jobs, *names)
    with pytest.raises(QueueEmpty):
        await driver.pop_many(2_000)
    await driver.push(persisted("good", max_attempts=1), timedelta(0))
    await driver.fail(await driver.pop())

    assert await driver.reload(Channel.FAILED) == 1
    assert await driver.info() == QueueInfo(waiting=1, failed=1_200)


async def test_a_lease_running_out_on_a_job_without_envelope_parks_it(store: Store) -> None:
    driver = store.driver
    await driver.push(persisted("gone", max_attempts=3), timedelta(0))
    await driver.pop()
    await store.client.hdel(store.keys.jobs, "gone")
    store.clock.advance(driver.lease)

    with pytest.raises(QueueEmpty):
        await driver.pop()

    assert await driver.info() == QueueInfo(failed=1)
    assert not await store.client.hexists(store.keys.tokens, "gone")
    shown = await driver.get_job("gone")
    assert shown is not None
    assert "lease ran out" in (shown.job.last_error or "")


async def test_a_flushed_lost_job_leaves_nothing(store: Store) -> None:
    driver = store.driver
    await driver.push(persisted("gone"), timedelta(0))
    await store.client.hdel(store.keys.jobs, "gone")
    with pytest.raises(QueueEmpty):
        await driver.pop()

    await driver.flush(Channel.FAILED)

    assert await driver.info() == QueueInfo()
    assert not await store.client.exists(store.keys.jobs)


async def test_due_times_are_kept_in_microseconds_and_a_zero_delay_is_due_at_once(
    store: Store,
) -> None:
    driver = store.driver
    store.clock.advance(timedelta(microseconds=999))
    now_us = store.clock.now_us()
    await driver.push(persisted("later"), timedelta(microseconds=1_001))
    await driver.push(persisted("now"), timedelta(0))

    assert await store.client.zscore(store.keys.delayed, "later") == now_us + 1_001
    assert (await driver.pop()).id == "now"
    store.clock.advance(timedelta(microseconds=1_000))
    with pytest.raises(QueueEmpty):
        await driver.pop()
    store.clock.advance(timedelta(microseconds=1))
    assert (await driver.pop()).id == "later"


# --- layout 1 -> 2 -------------------------------------------------------------------------


async def test_a_queue_in_layout_1_is_refused_with_a_clear_error_until_migrated(
    store: Store,
) -> None:
    await store.old_job(Channel.WAITING, "a", 0)

    for call in (store.driver.info(), store.driver.push(persisted("b"), timedelta(0))):
        with pytest.raises(DriverError, match="corequeue migrate") as refused:
            await call
        assert "layout 1" in str(refused.value)

    assert await store.client.get(store.keys.layout) is None  # nothing was changed
    assert await store.client.zcard(store.keys.waiting) == 1


async def test_migrate_converts_every_channel_keeping_leases_tokens_and_order(
    store: Store,
) -> None:
    now_ms = store.clock.now_ms()
    for job_id in ("w1", "w2", "w3"):
        await store.old_job(Channel.WAITING, job_id, 0)
    await store.old_job(Channel.DELAYED, "d", now_ms + 5)
    await store.old_job(Channel.RESERVED, "r", now_ms + 30_000)
    await store.client.hset(store.keys.tokens, "r", TOKEN)
    await store.old_job(Channel.FAILED, "f", now_ms - 10)
    await store.old_job(Channel.TIMEOUT, "t", now_ms - 20, attempts=2, max_attempts=3)
    await store.client.hset(store.keys.expiries, "t", 1)

    assert await store.driver.migrate() == [2]
    assert await store.driver.migrate() == []

    keys, client = store.keys, store.client
    assert await client.get(keys.layout) == b"2"
    assert not await client.exists(*store.written)  # every v1 envelope moved
    assert sorted(await client.hkeys(keys.jobs)) == [b"d", b"f", b"r", b"t", b"w1", b"w2", b"w3"]
    assert await client.zscore(keys.delayed, "d") == (now_ms + 5) * 1000 + 999  # never early
    assert await client.zscore(keys.reserved, "r") == (now_ms + 30_000) * 1000
    assert await client.zscore(keys.failed, "f") == (now_ms - 10) * 1000
    assert await store.driver.info() == QueueInfo(
        waiting=3, delayed=1, reserved=1, failed=1, timeout=1
    )
    timed_out = await store.driver.get_job("t")
    assert timed_out is not None
    assert (timed_out.job.attempts, timed_out.job.last_error) == (3, LEASE_EXPIRED)

    held = PersistedJob.from_bytes(await _hget(client, keys.jobs, "r"))
    held.token = TOKEN  # the worker that popped it before the upgrade still holds it
    assert await store.driver.renew(held)
    assert [job.id for job in await store.driver.pop_many(3)] == ["w1", "w2", "w3"]
    assert await store.driver.ack(held)


async def test_migrate_converts_in_batches_while_workers_of_this_release_keep_popping(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_module, "MIGRATE_BATCH", 50)
    ids = [f"j{number}" for number in range(600)]
    past_ms = store.clock.now_ms() - 1
    for number, job_id in enumerate(ids):
        channel = Channel.WAITING if number % 2 else Channel.DELAYED
        await store.old_job(channel, job_id, past_ms)
    seen: list[str] = []
    refused = asyncio.Event()

    async def work() -> None:
        while len(seen) < len(ids):
            try:
                jobs = await store.driver.pop_many(25)
            except DriverError:  # layout 1, or being converted: as a consumer, back off
                refused.set()
                await asyncio.sleep(0)
                continue
            except QueueEmpty:
                continue
            seen.extend(job.id for job in jobs)
            assert await store.driver.ack_many(jobs) == []

    workers = [asyncio.create_task(work()) for _ in range(2)]
    await asyncio.wait_for(refused.wait(), 10)  # the workers met layout 1 first
    applied = await asyncio.gather(store.driver.migrate(), store.driver.migrate())
    await asyncio.wait_for(asyncio.gather(*workers), 30)

    assert [2] in applied
    assert sorted(seen) == sorted(ids)  # every job once: none lost, none twice
    assert await store.driver.info() == QueueInfo()
    assert not await store.client.exists(*store.written)


async def test_a_new_queue_starts_in_layout_2_and_needs_no_migration(store: Store) -> None:
    assert await store.driver.migrate() == []

    assert await store.client.get(store.keys.layout) == b"2"


def test_the_migrate_command_converts_a_redis_queue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique_queue_name()
    config = tmp_path / "redis.yaml"
    config.write_text(
        f"queue: {{{name}: {{redisName: main}}}}\nredis: {{main: {{url: '{redis_url()}'}}}}\n"
    )
    keys = RedisDriver.from_url(redis_url(), name=name).keys
    asyncio.run(_write_one_old_job(keys))

    try:
        first = main(["migrate", "--config", str(config), "-q", name])
        second = main(["migrate", "--config", str(config), "-q", name])
        out = capsys.readouterr().out

        assert (first, second) == (0, 0)
        assert f"{name}: applied store layout versions 2" in out
        assert f"{name}: store layout already up to date" in out
    finally:
        asyncio.run(_delete(keys))


async def _write_one_old_job(keys: RedisKeys) -> None:
    async with raw_client(redis_url()) as client:
        await client.set(keys.layout1_job("a"), v1_envelope("a"))
        await client.zadd(keys.waiting, {"a": 1})


async def _delete(keys: RedisKeys) -> None:
    async with raw_client(redis_url()) as client:
        await client.delete(*keys.all(), keys.layout1_job("a"))


async def _hget(client: Redis | RedisCluster, key: str, field_name: str) -> bytes:
    stored = await client.hget(key, field_name)
    assert isinstance(stored, bytes)
    return stored
