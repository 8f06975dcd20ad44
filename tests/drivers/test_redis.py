"""What only the Redis driver has: key layout, server clock, URLs, ACL, wake-ups, outages.

The shared behaviour is in test_contract.py; these tests run against the same real servers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.crc import key_slot

from corequeue.drivers.base import Channel, ChannelConfig, InspectDriver, QueueInfo
from corequeue.drivers.redis import RedisDriver, RedisKeys
from corequeue.drivers.redis.connection import UrlSource, redact
from corequeue.drivers.redis.driver import RATE_STATE_KEPT
from corequeue.errors import DriverError, InvalidOption, QueueEmpty, StoreUnavailable
from corequeue.limits import Limits, Rate
from corequeue.testing import FakeClock
from tests.support.driver_redis import (
    FACTORIES,
    blocked_clients,
    die_with_parent,
    poll,
    raw_client,
    redis_cluster_url,
    redis_url,
    server_now_us,
    stored_keys,
    unique_queue_name,
    wipe,
)
from tests.support.drivers import POP_TIMEOUT
from tests.support.jobs import persisted

LONG = timedelta(seconds=60)
"""A pop timeout no test waits out: only a wake-up can end the wait."""

GUARD_SECONDS = 10.0
"""How long a test waits for something that should take milliseconds, before failing."""


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    async with raw_client(redis_url()) as plain:
        assert isinstance(plain, Redis)
        yield plain


@pytest.fixture
async def driver(client: Redis) -> AsyncIterator[RedisDriver]:
    driver = RedisDriver.from_url(redis_url(), name=unique_queue_name(), pop_timeout=POP_TIMEOUT)
    yield driver
    await wipe(driver, client)
    await driver.close()


@dataclass(frozen=True)
class Fenced:
    """A driver on a FakeClock and a raw client on its server, to look at the tokens hash."""

    driver: RedisDriver
    client: Redis | RedisCluster
    clock: FakeClock

    async def tokens(self) -> dict[str, str]:
        """Return the stored reservation tokens by job id."""
        stored = await self.client.hgetall(self.driver.keys.tokens)
        return {_decoded(key): _decoded(value) for key, value in stored.items()}


def _decoded(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture(params=["redis", "redis_cluster"])
async def fenced(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fenced]:
    clock = FakeClock()
    cluster = request.param == "redis_cluster"
    url = redis_cluster_url() if cluster else redis_url()
    async with (
        FACTORIES[request.param](clock, tmp_path) as driver,
        raw_client(url, cluster=cluster) as plain,
    ):
        assert isinstance(driver, RedisDriver)
        yield Fenced(driver, plain, clock)


def closed_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- key layout ---------------------------------------------------------------------------


def test_default_keys_are_hash_tagged_by_queue_and_share_one_slot() -> None:
    keys = RedisKeys.for_channels(ChannelConfig.for_queue("emails", prefix="shop:prod"))

    assert keys.waiting == "{shop:prod:emails}:waiting"
    assert keys.tokens == "{shop:prod:emails}:tokens"
    assert keys.jobs == "{shop:prod:emails}:jobs"
    assert keys.layout == "{shop:prod:emails}:layout"
    assert keys.periodic == "{shop:prod:emails}:periodic"
    every = [*keys.all(), *keys.for_script("{shop:prod:emails}:wake:1"), keys.layout1_job("42")]
    assert {key.split("}")[0] for key in every} == {"{shop:prod:emails"}
    assert {key_slot(key.encode()) for key in every} == {keys.slot}


def test_channel_keys_without_a_shared_hash_tag_are_refused() -> None:
    channels = ChannelConfig("q:waiting", "q:delayed", "q:reserved", "q:failed", "q:timeout")

    with pytest.raises(InvalidOption, match="hash slot"):
        RedisDriver.from_url("redis://localhost", channels=channels)


async def test_every_key_of_a_queue_lives_in_one_cluster_slot() -> None:
    url = redis_cluster_url()
    driver = RedisDriver.from_url(url, name=unique_queue_name(), cluster=True)
    async with raw_client(url, cluster=True) as cluster:
        try:
            await driver.push(persisted("a"), timedelta(0))
            await driver.push(persisted("b"), LONG)
            await driver.pop()  # so the tokens hash exists too

            keys = [*driver.keys.all(), *driver.keys.for_script(f"{driver.keys.wake_prefix}1")]
            assert isinstance(cluster, RedisCluster)
            assert await cluster.exists(driver.keys.tokens, driver.keys.jobs)
            slots = {await cluster.cluster_keyslot(key) for key in keys}
            assert len(slots) == 1
        finally:
            await wipe(driver, cluster)
            await driver.close()


async def test_store_holds_exactly_the_documented_keys(driver: RedisDriver, client: Redis) -> None:
    await driver.push(persisted("a"), timedelta(0))
    await driver.push(persisted("b"), LONG)

    keys = driver.keys
    assert await stored_keys(client, driver) == {
        keys.waiting,
        keys.delayed,
        keys.notify,
        keys.seq,
        keys.jobs,
        keys.layout,
    }
    assert sorted(await client.hkeys(keys.jobs)) == [b"a", b"b"]
    assert await client.hget(keys.jobs, "a") == persisted("a").to_bytes()  # as written
    assert await client.get(keys.layout) == b"2"
    assert await client.zrange(keys.waiting, 0, -1) == [b"a"]


async def test_periodic_slots_live_in_the_periodic_hash_of_the_queue(
    driver: RedisDriver, client: Redis
) -> None:
    slot = time.time_ns() // 1_000_000 - 1_000

    assert await driver.enqueue_slot("nightly", slot, persisted("periodic:nightly:1"))

    assert await client.hgetall(driver.keys.periodic) == {b"nightly": str(slot).encode()}
    assert driver.keys.periodic in await stored_keys(client, driver)
    assert await driver.forget_schedule("nightly")
    assert not await client.exists(driver.keys.periodic)


async def test_an_acked_job_leaves_nothing_behind(driver: RedisDriver, client: Redis) -> None:
    for job_id in ["a", "b"]:
        await driver.push(persisted(job_id), timedelta(0))

    for job in await driver.pop_many(2):
        await driver.ack(job)
    with pytest.raises(QueueEmpty):  # an idle pop also clears the wake-up tokens
        await driver.pop()

    # The arrival counter and the layout version: the two keys a dry queue keeps.
    assert await stored_keys(client, driver) == {driver.keys.seq, driver.keys.layout}


async def test_a_lost_lease_leaves_nothing_behind_once_acked(
    client: Redis, driver: RedisDriver
) -> None:
    clock = FakeClock()
    timed = RedisDriver.from_url(
        redis_url(), name=driver.name, pop_timeout=POP_TIMEOUT, clock=clock
    )
    await timed.push(persisted("a", max_attempts=2), timedelta(0))
    await timed.pop()
    clock.advance(timed.lease)

    again = await timed.pop()
    assert await client.hget(timed.keys.expiries, "a") == b"1"
    await timed.ack(again)

    assert not await client.exists(timed.keys.expiries, timed.keys.jobs)
    await timed.close()


# --- fencing ------------------------------------------------------------------------------


def test_the_driver_meets_the_inspect_driver_protocol() -> None:
    driver: InspectDriver = RedisDriver.from_url("redis://localhost", name="q")  # mypy checks

    assert isinstance(driver, InspectDriver)
    assert (driver.lease, driver.pop_timeout) == (timedelta(seconds=30), timedelta(seconds=1))


async def test_push_options_are_refused_by_name(driver: RedisDriver) -> None:
    with pytest.raises(InvalidOption, match="connection"):
        await driver.push(persisted("a"), timedelta(0), connection=object())
    with pytest.raises(InvalidOption, match="priority"):
        await driver.push_many([(persisted("a"), timedelta(0))], priority=1)

    assert await driver.info() == QueueInfo()


async def test_a_pop_stores_one_token_and_every_move_out_of_reserved_clears_it(
    fenced: Fenced,
) -> None:
    driver = fenced.driver
    await driver.push_many([(persisted(f"j{n}"), timedelta(0)) for n in range(5)])
    jobs = await driver.pop_many(5)
    token = jobs[0].token
    assert token is not None
    assert await fenced.tokens() == {job.id: token for job in jobs}
    assert {job.token for job in jobs} == {token}
    acked, failed, retried, released, flushed = jobs

    assert await driver.ack(acked)
    assert await driver.fail(failed)
    assert await driver.retry(retried)
    assert await driver.release(released)
    assert await fenced.tokens() == {flushed.id: token}
    await driver.flush(Channel.RESERVED)

    assert not await fenced.client.exists(driver.keys.tokens)
    assert await driver.info() == QueueInfo(waiting=2, failed=1)


async def test_a_recovered_lease_fences_out_the_old_holder(fenced: Fenced) -> None:
    driver = fenced.driver
    await driver.push(persisted("a", max_attempts=3), timedelta(0))
    old = await driver.pop()
    fenced.clock.advance(driver.lease)
    new = await driver.pop()  # recovers the lease, then reserves the job again

    assert new.token not in (None, old.token)
    assert await fenced.tokens() == {"a": new.token}
    assert not await driver.ack(old)
    assert await driver.ack_many([old]) == [old]
    assert not await driver.fail(old)
    assert not await driver.retry(old)
    assert not await driver.release(old)
    assert not await driver.renew(old)
    assert await driver.renew_many([old]) == [old]
    assert await driver.info() == QueueInfo(reserved=1)
    assert await fenced.tokens() == {"a": new.token}
    assert await driver.ack(new)


async def test_a_lease_recovered_before_anyone_pops_again_clears_its_token(
    fenced: Fenced,
) -> None:
    driver = fenced.driver
    await driver.push(persisted("a", max_attempts=1), timedelta(0))
    held = await driver.pop()
    fenced.clock.advance(driver.lease)

    with pytest.raises(QueueEmpty):  # recovers the lease: out of attempts, parked in timeout
        await driver.pop()

    assert await fenced.tokens() == {}
    assert not await driver.retry(held)
    assert await driver.info() == QueueInfo(timeout=1)


async def test_a_job_pushed_again_after_its_ack_is_out_of_the_old_holders_reach(
    fenced: Fenced,
) -> None:
    driver = fenced.driver
    await driver.push(persisted("a"), timedelta(0))
    first = await driver.pop()
    assert await driver.ack(first)
    await driver.push(persisted("a"), timedelta(0))
    second = await driver.pop()

    assert not await driver.ack(first)
    assert not await driver.release(first)

    assert await driver.info() == QueueInfo(reserved=1)
    assert await driver.ack(second)


async def test_a_job_without_the_right_token_is_left_alone(driver: RedisDriver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    popped = await driver.pop()

    for impostor in [persisted("a"), replace(popped, token="0" * 24), replace(popped, token="")]:
        assert not await driver.ack(impostor)
        assert await driver.ack_many([impostor]) == [impostor]
        assert not await driver.fail(impostor)
        assert not await driver.renew(impostor)

    assert await driver.info() == QueueInfo(reserved=1)
    assert await driver.ack(popped)


async def test_ack_many_acks_the_current_jobs_in_one_script_and_returns_the_stale(
    driver: RedisDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    await driver.push_many([(persisted(f"j{n}"), timedelta(0)) for n in range(3)])
    first, second, third = await driver.pop_many(3)
    stale = replace(second, token="0" * 24)
    ack = driver._scripts["ack"]
    calls: list[object] = []
    original = ack.run

    async def counted(client: object, keys_and_args: list[object]) -> object:
        calls.append(client)
        return await original(client, keys_and_args)  # type: ignore[arg-type]

    monkeypatch.setattr(ack, "run", counted)

    assert await driver.ack_many([first, stale, third, first]) == [stale, first]
    assert len(calls) == 1
    assert await driver.info() == QueueInfo(reserved=1)


async def test_renew_keeps_a_current_lease_even_when_its_expiry_does_not_move(
    fenced: Fenced,
) -> None:
    driver = fenced.driver
    await driver.push_many([(persisted(f"j{n}"), timedelta(0)) for n in range(2)])
    kept, lost = await driver.pop_many(2)
    assert await driver.release(lost)

    assert await driver.renew(kept)  # the clock stands still: the same expiry is written
    assert await driver.renew_many([kept, lost]) == [lost]

    fenced.clock.advance(driver.lease / 2)
    assert await driver.renew(kept)
    fenced.clock.advance(driver.lease * 3 / 4)  # past the first lease, within the renewed one
    assert (await driver.pop()).id == "j1"
    assert await driver.info() == QueueInfo(reserved=2)
    assert await driver.ack(kept)


# --- rate state ---------------------------------------------------------------------------


async def test_prune_forgets_the_rate_state_of_idle_groups(fenced: Fenced) -> None:
    driver, clock = fenced.driver, fenced.clock
    driver.set_limits(Limits(group_rate=Rate(1, timedelta(seconds=1))))
    groups = [f"user-{n}" for n in range(5)]
    await driver.push_many([(persisted(group, group=group), timedelta(0)) for group in groups])
    assert len(await driver.pop_many(10)) == 5
    stored = await fenced.client.hkeys(driver.keys.rates)
    assert sorted(map(_decoded, stored)) == [f"g:{group}" for group in groups]

    assert await driver.prune(None, 200) == 0  # a second later: still kept
    assert len(await fenced.client.hkeys(driver.keys.rates)) == 5
    clock.advance(RATE_STATE_KEPT + timedelta(seconds=2))
    await driver.prune(None, 2)  # two entries looked at per call: the scan goes on
    rounds = 1
    while await fenced.client.exists(driver.keys.rates) and rounds < 20:
        await driver.prune(None, 2)
        rounds += 1

    assert not await fenced.client.exists(driver.keys.rates)


# --- kept results -------------------------------------------------------------------------


async def test_kept_results_leave_the_store_with_their_jobs(fenced: Fenced) -> None:
    driver, clock = fenced.driver, fenced.clock
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    for job_id, keep in (("pruned", minute), ("deleted", hour), ("again", hour), ("flushed", hour)):
        await driver.push(persisted(job_id, keep_result=keep), timedelta(0))
        job = await driver.pop()
        job.result = b'"done"'
        assert await driver.ack(job) is True

    async def kept() -> dict[str, bytes]:
        stored = await fenced.client.hgetall(driver.keys.results)
        return {
            _decoded(key): value.encode() if isinstance(value, str) else value
            for key, value in stored.items()
        }

    assert (await kept())["pruned"] == b'60000:"done"'
    assert await driver.delete_job("deleted") is True
    await driver.push(persisted("again"), timedelta(0))  # a new job under the same id
    assert sorted(await kept()) == ["flushed", "pruned"]
    clock.advance(minute)
    assert await driver.prune(None, 10) == 1
    assert sorted(await kept()) == ["flushed"]
    await driver.flush(Channel.COMPLETED)
    assert await kept() == {}


# --- one clock ----------------------------------------------------------------------------


async def test_without_a_clock_due_times_come_from_the_server_clock(
    driver: RedisDriver, client: Redis
) -> None:
    before = await server_now_us(client)
    await driver.push(persisted("a"), timedelta(minutes=1))
    after = await server_now_us(client)

    due = await client.zscore(driver.keys.delayed, "a")

    assert due is not None
    assert before + 60_000_000 <= due <= after + 60_000_000  # microseconds, exactly


async def test_a_producer_clock_far_off_does_not_matter_without_a_clock(
    driver: RedisDriver,
) -> None:
    # A driver given a clock a day behind pushes "due now" jobs that are long due for the
    # server; a driver without a clock uses the server's time and pops them at once.
    behind = FakeClock()
    behind.advance(timedelta(days=-1))
    producer = RedisDriver.from_url(redis_url(), name=driver.name, clock=behind)
    await producer.push(persisted("a"), timedelta(hours=1))

    assert (await driver.pop()).id == "a"
    await producer.close()


async def test_a_deferred_job_wakes_an_idle_pop_when_due_and_not_before(
    client: Redis,
) -> None:
    driver = RedisDriver.from_url(redis_url(), name=unique_queue_name(), pop_timeout=LONG)
    try:
        await driver.push(persisted("later"), timedelta(milliseconds=300))
        due = await client.zscore(driver.keys.delayed, "later")
        assert due is not None

        job = await asyncio.wait_for(driver.pop(), GUARD_SECONDS)

        assert job.id == "later"
        assert await server_now_us(client) >= due
    finally:
        await wipe(driver, client)
        await driver.close()


async def test_an_expiring_lease_wakes_an_idle_pop(client: Redis) -> None:
    lease = timedelta(milliseconds=300)
    name = unique_queue_name()
    driver = RedisDriver.from_url(redis_url(), name=name, pop_timeout=LONG, lease=lease)
    try:
        await driver.push(persisted("a", max_attempts=2), timedelta(0))
        await driver.pop()  # and never renewed: the worker "died"

        again = await asyncio.wait_for(driver.pop(), GUARD_SECONDS)

        assert (again.id, again.attempts) == ("a", 2)
    finally:
        await wipe(driver, client)
        await driver.close()


async def test_wake_up_lists_of_timers_do_not_outlive_their_pop(
    driver: RedisDriver, client: Redis
) -> None:
    waiter = RedisDriver.from_url(redis_url(), name=driver.name, pop_timeout=LONG)
    await driver.push(persisted("later"), timedelta(milliseconds=100))

    await asyncio.wait_for(waiter.pop(), GUARD_SECONDS)

    assert not [key for key in await stored_keys(client, driver) if ":wake:" in key]
    await waiter.close()


# --- wake-ups and concurrency -------------------------------------------------------------


async def test_a_blocked_pop_wakes_when_another_process_pushes(client: Redis) -> None:
    name = unique_queue_name()
    consumer = RedisDriver.from_url(
        redis_url(), name=name, pop_timeout=LONG, client_name=f"cq-wake-{name}"
    )
    producer = RedisDriver.from_url(redis_url(), name=name)
    try:
        popping = asyncio.create_task(consumer.pop())
        await poll(lambda: _has_blocked(client, f"cq-wake-{name}"), GUARD_SECONDS)

        await producer.push(persisted("a"), timedelta(0))

        assert (await asyncio.wait_for(popping, GUARD_SECONDS)).id == "a"
    finally:
        await wipe(consumer, client)
        await consumer.close()
        await producer.close()


async def _has_blocked(client: Redis, name: str) -> bool:
    return await blocked_clients(client, name) > 0


async def test_a_blocked_pop_does_not_hold_up_other_calls_of_the_driver(client: Redis) -> None:
    name = unique_queue_name()
    driver = RedisDriver.from_url(
        redis_url(), name=name, pop_timeout=LONG, client_name=f"cq-stall-{name}"
    )
    try:
        popping = asyncio.create_task(driver.pop())
        await poll(lambda: _has_blocked(client, f"cq-stall-{name}"), GUARD_SECONDS)

        assert await asyncio.wait_for(driver.info(), GUARD_SECONDS) == QueueInfo()
        await asyncio.wait_for(driver.push(persisted("a"), timedelta(0)), GUARD_SECONDS)

        assert (await asyncio.wait_for(popping, GUARD_SECONDS)).id == "a"
    finally:
        await wipe(driver, client)
        await driver.close()


async def test_four_drivers_racing_on_a_thousand_jobs_due_at_once_take_each_once(
    client: Redis,
) -> None:
    name = unique_queue_name()
    frozen = FakeClock()  # every job gets the same due millisecond
    producer = RedisDriver.from_url(redis_url(), name=name, clock=frozen)
    consumers = [
        RedisDriver.from_url(redis_url(), name=name, pop_timeout=POP_TIMEOUT) for _ in range(4)
    ]
    ids = [f"job-{n}" for n in range(1000)]
    try:
        await producer.push_many([(persisted(i), timedelta(milliseconds=200)) for i in ids])
        due = {await client.zscore(producer.keys.delayed, i) for i in ids}
        assert len(due) == 1

        taken = await asyncio.gather(*(_drain(consumer, len(ids)) for consumer in consumers))

        popped = [job_id for ids_of_one in taken for job_id in ids_of_one]
        assert sorted(popped) == sorted(ids)
    finally:
        await wipe(producer, client)
        for driver in [producer, *consumers]:
            await driver.close()


async def _drain(driver: RedisDriver, total: int) -> list[str]:
    ids: list[str] = []
    while True:
        try:
            jobs = await driver.pop_many(7)
        except QueueEmpty:
            if (await driver.info()).pending == 0:
                return ids
            continue
        ids.extend(job.id for job in jobs)
        await driver.ack_many(jobs)


async def test_push_many_stores_a_large_batch_in_one_call(
    driver: RedisDriver, client: Redis
) -> None:
    jobs = [(persisted(f"j{n}"), timedelta(0)) for n in range(1234)]

    await driver.push_many(jobs)

    assert await driver.info() == QueueInfo(waiting=1234)
    assert await client.zrange(driver.keys.waiting, 0, 2) == [b"j0", b"j1", b"j2"]


async def test_scripts_are_reloaded_after_the_server_forgets_them(
    driver: RedisDriver, client: Redis
) -> None:
    await driver.push(persisted("a"), timedelta(0))
    await client.script_flush()

    await driver.push_many([(persisted(f"j{n}"), timedelta(0)) for n in range(1200)])
    await client.script_flush()

    assert (await driver.pop()).id == "a"
    assert (await driver.info()).waiting == 1200


async def test_a_driver_from_a_url_serves_several_event_loops(client: Redis) -> None:
    # As Queue.dispatch_sync does: a helper loop in a thread, next to the caller's loop.
    driver = RedisDriver.from_url(redis_url(), name=unique_queue_name(), pop_timeout=POP_TIMEOUT)
    helper = asyncio.new_event_loop()
    thread = threading.Thread(target=helper.run_forever)
    thread.start()
    try:
        pushed = asyncio.run_coroutine_threadsafe(
            driver.push(persisted("from-helper"), timedelta(0)), helper
        )
        await asyncio.wrap_future(pushed)

        assert (await driver.pop()).id == "from-helper"
    finally:
        await wipe(driver, client)
        await driver.close()  # closes the helper loop's connections on the helper loop
        helper.call_soon_threadsafe(helper.stop)
        thread.join()
        helper.close()


async def test_close_reaches_the_connections_of_a_stopped_loop(client: Redis) -> None:
    driver = RedisDriver.from_url(redis_url(), name=unique_queue_name())
    other = asyncio.new_event_loop()
    try:
        await asyncio.to_thread(other.run_until_complete, driver.info())

        await driver.close()
    finally:
        other.close()


async def test_a_given_client_works_and_is_left_open(client: Redis) -> None:
    driver = RedisDriver(client, name=unique_queue_name(), pop_timeout=POP_TIMEOUT)
    try:
        await driver.push(persisted("a"), timedelta(0))
        assert (await driver.pop()).id == "a"
    finally:
        await wipe(driver, client)
        await driver.close()

    assert await client.ping()


async def test_a_given_standalone_client_is_copied_for_another_event_loop(client: Redis) -> None:
    driver = RedisDriver(client, name=unique_queue_name(), pop_timeout=POP_TIMEOUT)
    try:
        await driver.push(persisted("here"), timedelta(0))

        def push_from_another_loop() -> None:
            async def push_and_close() -> None:
                await driver.push(persisted("there"), timedelta(0))
                await driver.close()  # closes the copies of this loop; the given client stays

            asyncio.run(push_and_close())

        await asyncio.to_thread(push_from_another_loop)

        assert await driver.info() == QueueInfo(waiting=2)
    finally:
        await wipe(driver, client)
        await driver.close()


async def test_a_given_cluster_client_serves_scripts_and_blocking_pops() -> None:
    url = redis_cluster_url()
    async with raw_client(url, cluster=True) as cluster:
        assert isinstance(cluster, RedisCluster)
        driver = RedisDriver(cluster, name=unique_queue_name(), pop_timeout=POP_TIMEOUT)
        try:
            await driver.push_many([(persisted(f"j{n}"), timedelta(0)) for n in range(1200)])
            popping = asyncio.create_task(driver.pop_many(1000))

            assert len(await asyncio.wait_for(popping, GUARD_SECONDS)) == 1000
            assert await driver.info() == QueueInfo(waiting=200, reserved=1000)
        finally:
            await wipe(driver, cluster)
            await driver.close()


async def test_a_fresh_cluster_driver_takes_concurrent_calls_from_the_start() -> None:
    url = redis_cluster_url()
    for _ in range(10):  # the first calls of a client that has not read the slot map yet
        driver = RedisDriver.from_url(url, cluster=True, name=unique_queue_name())
        async with raw_client(url, cluster=True) as cluster:
            try:
                popping = [asyncio.create_task(driver.pop()) for _ in range(6)]
                await driver.push_many([(persisted(f"j{n}"), timedelta(0)) for n in range(6)])

                popped = await asyncio.wait_for(asyncio.gather(*popping), GUARD_SECONDS)

                assert sorted(job.id for job in popped) == [f"j{n}" for n in range(6)]
            finally:
                await wipe(driver, cluster)
                await driver.close()


async def test_a_cancelled_pop_leaves_the_queue_as_it_was(
    driver: RedisDriver, client: Redis
) -> None:
    client_name = f"cq-cancel-{driver.name}"
    waiter = RedisDriver.from_url(
        redis_url(), name=driver.name, pop_timeout=LONG, client_name=client_name
    )
    await driver.push(persisted("later"), timedelta(seconds=30))  # a timer waits for it
    popping = asyncio.create_task(waiter.pop())
    await poll(lambda: _has_blocked(client, client_name), GUARD_SECONDS)

    popping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await popping

    assert await driver.info() == QueueInfo(delayed=1)
    await waiter.close()


async def test_an_unreadable_envelope_goes_to_failed_and_the_pop_goes_on(
    driver: RedisDriver, client: Redis
) -> None:
    await driver.push(persisted("bad"), timedelta(0))
    await driver.push(persisted("good"), timedelta(0))
    await client.hset(driver.keys.jobs, "bad", b'{"v": 99}')

    assert (await driver.pop()).id == "good"

    assert await driver.info() == QueueInfo(reserved=1, failed=1)
    assert await client.hget(driver.keys.jobs, "bad") == b'{"v": 99}'  # kept for an operator
    assert await client.hkeys(driver.keys.tokens) == [b"good"]


# --- URLs, ACL and outages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/2", "redis://***@cache:6379/2"),
        ("rediss://app:s3cret@cache:6380/0", "rediss://***@cache:6380/0"),
        ("redis+cluster://app:s3cret@n1:7000,n2:7001", "redis+cluster://***@n1:7000,n2:7001"),
        (
            "redis://cache/0?password=s3cret&socket_timeout=2",
            "redis://cache/0?password=***&socket_timeout=2",
        ),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    driver = RedisDriver.from_url(url, name="q")

    assert redact(url) == shown
    assert driver.url == shown
    assert "s3cret" not in repr(driver)


async def test_standalone_urls_carry_tls_user_password_and_database() -> None:
    clients = UrlSource("rediss://app:pw@cache:6380/3", options={}).open(first=True)
    main = clients.main
    assert isinstance(main, Redis)

    kwargs = main.connection_pool.connection_kwargs
    assert main.connection_pool.connection_class is SSLConnection
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache", 6380, 3)
    assert (kwargs["username"], kwargs["password"]) == ("app", "pw")
    assert clients.blocking is not main


async def test_unix_socket_urls_are_understood() -> None:
    clients = UrlSource("unix:///run/redis.sock?db=4", options={}).open(first=True)

    assert isinstance(clients.main, Redis)
    pool = clients.main.connection_pool
    assert pool.connection_class is UnixDomainSocketConnection
    assert (pool.connection_kwargs["path"], pool.connection_kwargs["db"]) == ("/run/redis.sock", 4)


@pytest.mark.parametrize(
    "url", ["redis+cluster://app:pw@n1:7000,n2:7001", "rediss+cluster://app:pw@n1:7000,n2:7001"]
)
async def test_cluster_urls_name_every_startup_node(url: str) -> None:
    clients = UrlSource(url, options={}).open(first=True)
    main = clients.main

    assert isinstance(main, RedisCluster)
    nodes = sorted((node.host, node.port) for node in main.nodes_manager.startup_nodes.values())
    assert nodes == [("n1", 7000), ("n2", 7001)]
    assert main.nodes_manager.connection_kwargs["password"] == "pw"
    tls = main.nodes_manager.connection_kwargs.get("connection_class") is SSLConnection
    assert tls == url.startswith("rediss")
    assert main.reinitialize_steps == 0  # a MOVED never resets connections in use
    await main.aclose()


async def test_cluster_urls_accept_ipv6_nodes() -> None:
    clients = UrlSource("redis+cluster://[::1]:7000,[::2]", options={}).open(first=True)
    main = clients.main

    assert isinstance(main, RedisCluster)
    nodes = sorted((node.host, node.port) for node in main.nodes_manager.startup_nodes.values())
    assert nodes == [("::1", 7000), ("::2", 6379)]
    await main.aclose()


async def test_cluster_option_turns_a_redis_url_into_a_cluster_client() -> None:
    clients = UrlSource("redis://n1:7000", cluster=True, options={}).open(first=True)

    assert isinstance(clients.main, RedisCluster)


async def test_sentinel_urls_name_the_sentinels_service_and_database() -> None:
    clients = UrlSource("redis+sentinel://:pw@s1:26379,s2/mymaster/2", options={}).open(first=True)
    main = clients.main

    assert isinstance(main, Redis)
    pool = main.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert (pool.service_name, pool.connection_kwargs["db"]) == ("mymaster", 2)
    assert pool.connection_kwargs["password"] == "pw"
    sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(s["host"], s["port"]) for s in sentinels] == [("s1", 26379), ("s2", 26379)]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://cache:6379", "unsupported Redis URL"),
        ("redis+cluster://n1:7000/3", "database 0 only"),
        ("redis+sentinel://s1:26379", "service_name"),
        ("redis+cluster://n1:port", "bad port"),
        ("redis+cluster://", "names no host"),
    ],
)
async def test_bad_urls_are_refused_with_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        UrlSource(url, options={}).open(first=True)


async def test_an_acl_user_with_a_password_can_run_the_queue(client: Redis) -> None:
    user, password = f"cq-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    # The least a worker needs: scripts, the commands they run, BLPOP and TIME, on its keys.
    await client.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        reset_keys=True,
        keys=["{app:env:*"],
        categories=["-@all", "+@scripting", "+@read", "+@write", "+@blocking", "+@connection"],
        commands=["+time"],
    )
    host = redis_url().removeprefix("redis://")
    driver = RedisDriver.from_url(f"redis://{user}:{password}@{host}", name=unique_queue_name())
    try:
        await driver.push(persisted("a"), timedelta(0))
        job = await driver.pop()
        await driver.ack(job)

        assert job.id == "a"
        assert password not in repr(driver)
    finally:
        await wipe(driver, client)
        await driver.close()
        await client.acl_deluser(user)


async def test_a_command_the_server_refuses_raises_driver_error(client: Redis) -> None:
    user, password = f"cq-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await client.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], categories=["+@read"]
    )
    host = redis_url().removeprefix("redis://")
    driver = RedisDriver.from_url(f"redis://{user}:{password}@{host}", name="q")
    try:
        with pytest.raises(DriverError, match="refused") as raised:
            await driver.push(persisted("a"), timedelta(0))

        assert not isinstance(raised.value, StoreUnavailable)  # reachable, but not allowed
    finally:
        await driver.close()
        await client.acl_deluser(user)


async def test_a_wrong_password_is_reported_without_the_password() -> None:
    host = redis_url().removeprefix("redis://")
    driver = RedisDriver.from_url(f"redis://nobody:wrong-secret@{host}", name="q")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await driver.push(persisted("a"), timedelta(0))

        assert "wrong-secret" not in str(raised.value)
        assert "***@127.0.0.1" in str(raised.value)
    finally:
        await driver.close()


async def test_a_server_that_is_down_raises_store_unavailable_quickly() -> None:
    url = f"redis://:s3cret@127.0.0.1:{closed_port()}/0"
    driver = RedisDriver.from_url(url, name="q", pop_timeout=POP_TIMEOUT)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1") as raised:
            await driver.push(persisted("a"), timedelta(0))
        with pytest.raises(StoreUnavailable):
            await driver.pop()

        assert "s3cret" not in str(raised.value)
        assert time.monotonic() - started < GUARD_SECONDS
    finally:
        await driver.close()


async def test_something_else_than_redis_at_the_address_is_store_unavailable() -> None:
    async def answer_html(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"<html>not redis</html>\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_html, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    driver = RedisDriver.from_url(f"redis://127.0.0.1:{port}/0", name="q")
    try:
        with pytest.raises(StoreUnavailable, match="Protocol error"):
            await driver.info()
    finally:
        await driver.close()
        server.close()
        await server.wait_closed()


# --- Sentinel -----------------------------------------------------------------------------


async def test_a_sentinel_url_finds_the_master(tmp_path: Path, client: Redis) -> None:
    port = closed_port()
    master = redis_url().removeprefix("redis://").split("/")[0].split(":")
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor cq-test {master[0]} {master[1]} 1\n"
    )
    sentinel = await asyncio.create_subprocess_exec(
        "redis-server", str(config), "--sentinel",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=die_with_parent,  # a killed test run leaves no sentinel behind
    )  # fmt: skip
    driver = RedisDriver.from_url(
        f"redis+sentinel://127.0.0.1:{port}/cq-test/0", name=unique_queue_name()
    )
    try:
        await poll(lambda: _answers(port), GUARD_SECONDS)

        await driver.push(persisted("a"), timedelta(0))

        assert (await driver.pop()).id == "a"
    finally:
        await wipe(driver, client)
        await driver.close()
        sentinel.terminate()
        await sentinel.wait()


async def _answers(port: int) -> bool:
    try:
        async with raw_client(f"redis://127.0.0.1:{port}") as sentinel:
            assert isinstance(sentinel, Redis)
            return bool(await sentinel.sentinel_get_master_addr_by_name("cq-test"))
    except Exception:
        return False


async def test_a_pop_longer_than_the_socket_timeout_blocks_in_shorter_steps(
    client: Redis,
) -> None:
    given = Redis.from_url(redis_url(), socket_timeout=0.5)
    driver = RedisDriver(given, name=unique_queue_name(), pop_timeout=timedelta(seconds=1.2))
    try:
        with pytest.raises(QueueEmpty):  # not a socket timeout turned into StoreUnavailable
            await driver.pop()
    finally:
        await driver.close()
        await given.aclose()
