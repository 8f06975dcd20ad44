"""The Driver contract, stated once and run against every driver (see conftest.py).

A driver is done when this file passes for it unchanged. Time comes from the FakeClock; the
only real waiting is the driver's short pop timeout before QueueEmpty.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from corequeue.drivers.base import (
    LEASE_EXPIRED,
    BatchDriver,
    BatchLeaseDriver,
    Channel,
    Driver,
    LeaseDriver,
    QueueInfo,
)
from corequeue.errors import QueueEmpty
from corequeue.testing import FakeClock
from tests.support.jobs import persisted

MINUTE = timedelta(minutes=1)


async def pop_all(driver: Driver) -> list[str]:
    """Pop until the driver is empty; return the ids popped, in order, acking each."""
    ids: list[str] = []
    while True:
        try:
            job = await driver.pop()
        except QueueEmpty:
            return ids
        ids.append(job.id)
        await driver.ack(job)


# --- push and pop -------------------------------------------------------------------------


async def test_pop_returns_the_pushed_envelope_unchanged(driver: Driver) -> None:
    job = persisted(
        "a",
        value=b"\x00\xffnot utf-8",
        handle_timeout=timedelta(seconds=7),
        backoff=timedelta(seconds=3),
        attempts=2,
        max_attempts=4,
        last_error="boom",
    )

    await driver.push(job, timedelta(0))
    popped = await driver.pop()

    assert popped == job


async def test_pop_on_empty_queue_raises_queue_empty(driver: Driver) -> None:
    with pytest.raises(QueueEmpty):
        await driver.pop()


async def test_waiting_jobs_pop_first_in_first_out(driver: Driver) -> None:
    for job_id in ["a", "b", "c"]:
        await driver.push(persisted(job_id), timedelta(0))

    assert await pop_all(driver) == ["a", "b", "c"]


async def test_popped_job_is_reserved(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))

    await driver.pop()

    assert await driver.info() == QueueInfo(reserved=1)


# --- deferral -----------------------------------------------------------------------------


async def test_delayed_job_is_not_popped_early(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a"), delay=MINUTE)

    with pytest.raises(QueueEmpty):
        await driver.pop()
    clock.advance(MINUTE - timedelta(milliseconds=1))
    with pytest.raises(QueueEmpty):
        await driver.pop()
    clock.advance(timedelta(milliseconds=1))

    assert (await driver.pop()).id == "a"


async def test_delayed_jobs_become_waiting_in_due_order(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("late"), timedelta(seconds=3))
    await driver.push(persisted("early"), timedelta(seconds=1))
    await driver.push(persisted("middle"), timedelta(seconds=2))

    clock.advance(timedelta(seconds=3))

    assert await pop_all(driver) == ["early", "middle", "late"]


async def test_info_counts_delayed_until_due(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a"), MINUTE)
    assert await driver.info() == QueueInfo(delayed=1)

    clock.advance(MINUTE)

    assert await driver.info() == QueueInfo(waiting=1)


# --- one consumer per job -----------------------------------------------------------------


async def test_each_job_is_popped_by_exactly_one_of_many_consumers(
    driver: Driver, clock: FakeClock
) -> None:
    ids = [f"job-{n}" for n in range(60)]
    for n, job_id in enumerate(ids):
        await driver.push(persisted(job_id), timedelta(milliseconds=n % 3))
    clock.advance(timedelta(milliseconds=3))

    results = await asyncio.gather(*(pop_all(driver) for _ in range(6)))

    popped = [job_id for result in results for job_id in result]
    assert sorted(popped) == sorted(ids)


# --- ack, fail, retry ---------------------------------------------------------------------


async def test_ack_removes_the_job(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    job = await driver.pop()

    await driver.ack(job)

    assert await driver.info() == QueueInfo()
    with pytest.raises(QueueEmpty):
        await driver.pop()


async def test_fail_parks_the_job_with_its_error(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    job = await driver.pop()
    job.last_error = "ValueError: bad address"

    await driver.fail(job)

    assert await driver.info() == QueueInfo(failed=1)
    assert await driver.reload(Channel.FAILED) == 1
    assert (await driver.pop()).last_error == "ValueError: bad address"


async def test_retry_delays_the_job_by_its_backoff_and_keeps_its_state(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("a", max_attempts=3), timedelta(0))
    job = await driver.pop()
    job.attempts, job.backoff, job.last_error = 2, timedelta(seconds=5), "try again"

    await driver.retry(job)

    assert await driver.info() == QueueInfo(delayed=1)
    clock.advance(timedelta(seconds=4))
    with pytest.raises(QueueEmpty):
        await driver.pop()
    clock.advance(timedelta(seconds=1))
    again = await driver.pop()
    assert (again.id, again.attempts, again.backoff, again.last_error) == (
        "a",
        2,
        timedelta(seconds=5),
        "try again",
    )


# --- cancel -------------------------------------------------------------------------------


async def test_cancel_removes_a_waiting_job(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))

    assert await driver.cancel("a") is True

    assert await driver.info() == QueueInfo()


async def test_cancel_removes_a_delayed_job(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a"), MINUTE)

    assert await driver.cancel("a") is True

    clock.advance(MINUTE)
    with pytest.raises(QueueEmpty):
        await driver.pop()


async def test_cancel_of_unknown_or_reserved_job_returns_false(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    await driver.pop()

    assert await driver.cancel("a") is False
    assert await driver.cancel("never-pushed") is False
    assert await driver.info() == QueueInfo(reserved=1)


# --- idempotent enqueue -------------------------------------------------------------------


@pytest.mark.parametrize("delay", [timedelta(0), MINUTE])
async def test_pushing_a_pending_id_again_enqueues_nothing(
    driver: Driver, delay: timedelta
) -> None:
    await driver.push(persisted("a", value=b"1"), delay)

    await driver.push(persisted("a", value=b"2"), timedelta(0))

    info = await driver.info()
    assert info.waiting + info.delayed == 1


async def test_pushing_a_reserved_id_again_enqueues_nothing(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    await driver.pop()

    await driver.push(persisted("a"), timedelta(0))

    assert await driver.info() == QueueInfo(reserved=1)


async def test_an_acked_id_can_be_pushed_again(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    await driver.ack(await driver.pop())

    await driver.push(persisted("a"), timedelta(0))

    assert await pop_all(driver) == ["a"]


async def test_pushing_a_failed_id_again_replaces_the_failed_job(driver: Driver) -> None:
    await driver.push(persisted("a", value=b"1"), timedelta(0))
    await driver.fail(await driver.pop())

    await driver.push(persisted("a", value=b"2"), timedelta(0))

    assert await driver.info() == QueueInfo(waiting=1)
    assert (await driver.pop()).value == b"2"


# --- reload and flush ---------------------------------------------------------------------


async def test_reload_moves_failed_jobs_back_to_waiting(driver: Driver) -> None:
    for job_id in ["a", "b"]:
        await driver.push(persisted(job_id, attempts=1, max_attempts=1), timedelta(0))
        await driver.fail(await driver.pop())

    assert await driver.reload(Channel.FAILED) == 2

    assert await driver.info() == QueueInfo(waiting=2)
    assert sorted(await pop_all(driver)) == ["a", "b"]


async def test_reload_of_an_empty_channel_moves_nothing(driver: Driver) -> None:
    assert await driver.reload("timeout") == 0


@pytest.mark.parametrize("channel", ["waiting", "delayed", "reserved", "nonsense"])
async def test_reload_refuses_channels_other_than_failed_and_timeout(
    driver: Driver, channel: str
) -> None:
    with pytest.raises(ValueError, match="channel"):
        await driver.reload(channel)


async def test_flush_empties_only_the_named_channel(driver: Driver) -> None:
    await driver.push(persisted("failed"), timedelta(0))
    await driver.fail(await driver.pop())
    await driver.push(persisted("reserved"), timedelta(0))
    await driver.pop()
    await driver.push(persisted("waiting"), timedelta(0))
    await driver.push(persisted("delayed"), MINUTE)

    await driver.flush(Channel.FAILED)
    assert await driver.info() == QueueInfo(waiting=1, delayed=1, reserved=1)
    await driver.flush(Channel.DELAYED)
    assert await driver.info() == QueueInfo(waiting=1, reserved=1)
    await driver.flush(Channel.WAITING)
    assert await driver.info() == QueueInfo(reserved=1)
    await driver.flush(Channel.RESERVED)
    assert await driver.info() == QueueInfo()


async def test_flush_refuses_an_unknown_channel(driver: Driver) -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        await driver.flush("everything")


# --- leases -------------------------------------------------------------------------------


def leased(driver: Driver) -> LeaseDriver:
    assert isinstance(driver, LeaseDriver)
    return driver


async def test_expired_lease_counts_as_an_attempt_and_the_job_is_retried(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("a", max_attempts=2), timedelta(0))
    await driver.pop()

    clock.advance(leased(driver).lease)
    again = await driver.pop()

    assert (again.id, again.attempts, again.last_error) == ("a", 2, LEASE_EXPIRED)


async def test_expired_lease_without_attempts_left_parks_the_job_in_timeout(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("a", max_attempts=1), timedelta(0))
    await driver.pop()

    clock.advance(leased(driver).lease)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    assert await driver.info() == QueueInfo(timeout=1)
    assert await driver.reload(Channel.TIMEOUT) == 1
    assert (await driver.pop()).last_error == LEASE_EXPIRED


async def test_renewed_lease_does_not_expire(driver: Driver, clock: FakeClock) -> None:
    lease = leased(driver).lease
    await driver.push(persisted("a", max_attempts=2), timedelta(0))
    job = await driver.pop()

    clock.advance(lease * 2 / 3)
    await leased(driver).renew(job)
    clock.advance(lease * 2 / 3)

    with pytest.raises(QueueEmpty):
        await driver.pop()
    assert await driver.info() == QueueInfo(reserved=1)


async def test_release_returns_the_job_to_waiting_without_counting_an_attempt(
    driver: Driver,
) -> None:
    await driver.push(persisted("a", attempts=1, max_attempts=1), timedelta(0))
    job = await driver.pop()

    await leased(driver).release(job)

    assert await driver.info() == QueueInfo(waiting=1)
    again = await driver.pop()
    assert (again.id, again.attempts) == ("a", 1)


# --- bulk and durability ------------------------------------------------------------------


async def test_push_many_enqueues_every_job(driver: Driver, clock: FakeClock) -> None:
    if not isinstance(driver, BatchDriver):
        pytest.skip("driver has no push_many")
    jobs = [(persisted(f"j{n}"), timedelta(seconds=n % 2)) for n in range(50)]

    await driver.push_many(jobs)

    assert await driver.info() == QueueInfo(waiting=25, delayed=25)
    clock.advance(timedelta(seconds=1))
    assert sorted(await pop_all(driver)) == sorted(job.id for job, _ in jobs)


async def test_pop_many_reserves_due_jobs_oldest_first(driver: Driver, clock: FakeClock) -> None:
    if not isinstance(driver, BatchDriver):
        pytest.skip("driver has no pop_many")
    for n in range(5):
        await driver.push(persisted(f"j{n}"), timedelta(0))
    await driver.push(persisted("later"), MINUTE)

    first = await driver.pop_many(3)
    rest = await driver.pop_many(10)

    assert [job.id for job in first + rest] == ["j0", "j1", "j2", "j3", "j4"]
    assert await driver.info() == QueueInfo(delayed=1, reserved=5)
    with pytest.raises(QueueEmpty):
        await driver.pop_many(10)


def batch_leased(driver: Driver) -> BatchLeaseDriver:
    if not isinstance(driver, BatchLeaseDriver):
        pytest.skip("driver has no ack_many / renew_many")
    return driver


async def test_ack_many_removes_reserved_jobs_and_leaves_the_rest(driver: Driver) -> None:
    bulk = batch_leased(driver)
    for job_id in ("a", "b", "c"):
        await driver.push(persisted(job_id), timedelta(0))
    first, second = await driver.pop(), await driver.pop()
    waiting = persisted("c")

    await bulk.ack_many([first, second, waiting])
    await bulk.ack_many([])

    assert await driver.info() == QueueInfo(waiting=1)
    assert await pop_all(driver) == ["c"]


async def test_renew_many_extends_every_lease(driver: Driver, clock: FakeClock) -> None:
    bulk = batch_leased(driver)
    for job_id in ("a", "b"):
        await driver.push(persisted(job_id, max_attempts=2), timedelta(0))
    jobs = [await driver.pop(), await driver.pop()]

    clock.advance(bulk.lease * 2 / 3)
    await bulk.renew_many(jobs)
    await bulk.renew_many([])
    clock.advance(bulk.lease * 2 / 3)

    with pytest.raises(QueueEmpty):
        await driver.pop()
    assert await driver.info() == QueueInfo(reserved=2)


async def test_nothing_is_lost_through_retries_failures_and_reloads(
    driver: Driver, clock: FakeClock
) -> None:
    ids = {f"job-{n}" for n in range(40)}
    for n, job_id in enumerate(sorted(ids)):
        await driver.push(persisted(job_id, max_attempts=2), timedelta(seconds=n % 4))
    done: set[str] = set()

    for _ in range(12):
        clock.advance(timedelta(seconds=2))
        while True:
            try:
                job = await driver.pop()
            except QueueEmpty:
                break
            if hash(job.id) % 3 == 0 and job.attempts < job.max_attempts:
                job.attempts += 1
                job.backoff = timedelta(seconds=1)
                await driver.retry(job)
            elif hash(job.id) % 5 == 0 and job.id not in done:
                done.add(job.id)
                await driver.fail(job)
            else:
                done.add(job.id)
                await driver.ack(job)
        await driver.reload(Channel.FAILED)

    assert done == ids
    assert await driver.info() == QueueInfo()
