"""The results part of the Driver contract: `completed`, waiting for a finished job, pruning.

Use it like `corequeue.testing.contract` (same fixtures), in a module of its own:

    from corequeue.testing.contract_results import *  # noqa: F403

Time comes from the FakeClock, so result expiries and retention cutoffs are exact.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from corequeue.drivers.base import Channel, Driver, InspectDriver, QueueInfo, instant_of_ms
from corequeue.errors import QueueEmpty
from corequeue.job import PersistedJob
from corequeue.testing import FakeClock
from corequeue.testing.jobs import persisted

MINUTE = timedelta(minutes=1)


def inspected(driver: Driver) -> InspectDriver:
    """Return `driver` as an InspectDriver; skip the test for a driver without inspection."""
    if not isinstance(driver, InspectDriver):
        pytest.skip(f"{type(driver).__name__} does not implement InspectDriver")
    return driver


async def popped(driver: Driver, job_id: str, **fields: Any) -> PersistedJob:
    """Push a job with `fields`, pop it and return the holder's copy (nothing else waits)."""
    await driver.push(persisted(job_id, **fields), timedelta(0))
    job = await driver.pop()
    assert job.id == job_id
    return job


async def completed(driver: Driver, job_id: str, keep: timedelta, result: bytes) -> None:
    """Push, pop and ack a job that keeps `result` for `keep`."""
    await driver.push(persisted(job_id, keep_result=keep), timedelta(0))
    job = await driver.pop()
    assert job.id == job_id
    job.result = result
    assert await driver.ack(job) is True


async def parked(driver: Driver, job_id: str) -> None:
    """Push, pop and fail a job."""
    await driver.push(persisted(job_id), timedelta(0))
    job = await driver.pop()
    job.last_error = "boom"
    assert await driver.fail(job) is True


# --- ack keeps the result -------------------------------------------------------------------


async def test_ack_of_a_job_keeping_its_result_moves_it_to_completed(
    driver: Driver, clock: FakeClock
) -> None:
    await completed(driver, "a", MINUTE, b'{"sum":3}')

    view = await inspected(driver).get_job("a")

    assert view is not None
    assert view.channel is Channel.COMPLETED
    assert view.job.result == b'{"sum":3}'
    assert view.job.keep_result == MINUTE
    assert view.due_at == instant_of_ms(clock.now_ms() + 60_000)
    assert await driver.info() == QueueInfo(completed=1)


async def test_ack_of_a_job_without_keep_result_removes_it(driver: Driver) -> None:
    job = await popped(driver, "a")
    job.result = b"1"

    assert await driver.ack(job) is True

    assert await inspected(driver).get_job("a") is None
    assert await driver.info() == QueueInfo()


async def test_zero_keep_result_keeps_nothing(driver: Driver) -> None:
    await driver.push(persisted("a", keep_result=timedelta(0)), timedelta(0))
    job = await driver.pop()
    job.result = b"1"

    assert await driver.ack(job) is True

    assert await driver.info() == QueueInfo()


async def test_ack_many_keeps_some_results_and_removes_the_rest(driver: Driver) -> None:
    await driver.push_many(
        [
            (persisted("kept", keep_result=MINUTE), timedelta(0)),
            (persisted("dropped"), timedelta(0)),
        ]
    )
    jobs = await driver.pop_many(2)
    for job in jobs:
        job.result = b'"done"'

    assert await driver.ack_many(jobs) == []

    assert await driver.info() == QueueInfo(completed=1)
    kept = await inspected(driver).get_job("kept")
    assert kept is not None
    assert kept.job.result == b'"done"'
    assert await inspected(driver).get_job("dropped") is None


async def test_stale_ack_keeps_no_result(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a", keep_result=MINUTE, max_attempts=2), timedelta(0))
    first = await driver.pop()
    clock.advance(driver.lease + timedelta(milliseconds=1))
    second = await driver.pop()  # the lease ran out: the job went on without the first holder
    first.result = b'"stale"'

    assert await driver.ack(first) is False

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert view.channel is Channel.RESERVED
    second.result = b'"fresh"'
    assert await driver.ack(second) is True
    view = await inspected(driver).get_job("a")
    assert view is not None
    assert view.job.result == b'"fresh"'


async def test_a_result_replaces_one_the_pushed_envelope_carried(driver: Driver) -> None:
    job = await popped(driver, "a", keep_result=MINUTE, result=b'"old"')
    job.result = b'"new"'

    assert await driver.ack(job) is True

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert (view.channel, view.job.result) == (Channel.COMPLETED, b'"new"')


async def test_a_keep_result_set_by_the_holder_is_stored(driver: Driver) -> None:
    job = await popped(driver, "a")  # the queue's keep_results, not the envelope, keeps it
    job.keep_result, job.result = MINUTE, b"1"

    assert await driver.ack(job) is True

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert (view.job.keep_result, view.job.result) == (MINUTE, b"1")


async def test_a_completed_job_counts_the_leases_it_lost(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a", keep_result=MINUTE, max_attempts=3), timedelta(0))
    await driver.pop()
    clock.advance(driver.lease)
    again = await driver.pop()
    again.result = b'"late"'

    assert await driver.ack(again) is True

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert (view.job.attempts, view.job.last_error) == (again.attempts, again.last_error)
    assert (view.job.attempts, view.job.result) == (2, b'"late"')


async def test_an_ack_sent_twice_keeps_the_first_result(driver: Driver) -> None:
    job = await popped(driver, "a", keep_result=MINUTE)
    job.result = b'"first"'
    assert await driver.ack(job) is True

    job.result = b'"second"'  # the same ack again, late (a retried call), with another value
    assert await driver.ack(job) is False
    assert await driver.ack_many([job]) == [job]

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert (view.channel, view.job.result) == (Channel.COMPLETED, b'"first"')
    assert await driver.info() == QueueInfo(completed=1)


async def test_a_binary_result_round_trips(driver: Driver) -> None:
    await completed(driver, "a", MINUTE, b"\x00\xffnot utf-8")

    view = await inspected(driver).get_job("a")

    assert view is not None
    assert view.job.result == b"\x00\xffnot utf-8"


async def test_completed_jobs_are_listed_by_expiry_flushed_and_deleted(
    driver: Driver, clock: FakeClock
) -> None:
    await completed(driver, "later", 2 * MINUTE, b"1")
    await completed(driver, "sooner", MINUTE, b"2")
    await completed(driver, "gone", 3 * MINUTE, b"3")

    listed = await inspected(driver).list_jobs(Channel.COMPLETED)
    deleted = await inspected(driver).delete_job("gone")

    assert [view.job.id for view in listed] == ["sooner", "later", "gone"]
    assert listed[0].due_at == instant_of_ms(clock.now_ms() + 60_000)
    assert deleted is True
    assert await driver.info() == QueueInfo(completed=2)
    await driver.flush(Channel.COMPLETED)
    assert await driver.info() == QueueInfo()


async def test_completed_cannot_be_reloaded(driver: Driver) -> None:
    with pytest.raises(ValueError, match="only the failed and timeout"):
        await driver.reload(Channel.COMPLETED)


async def test_a_job_pushed_again_after_it_completed_is_a_new_job(driver: Driver) -> None:
    await completed(driver, "a", MINUTE, b"1")

    await driver.push(persisted("a"), timedelta(0))

    assert await driver.info() == QueueInfo(waiting=1)
    job = await driver.pop()
    assert job.result is None


# --- wait_finished ---------------------------------------------------------------------------


async def test_wait_finished_returns_a_finished_job_at_once(driver: Driver) -> None:
    await completed(driver, "done", MINUTE, b"1")
    await parked(driver, "broken")

    done = await driver.wait_finished("done", None)
    broken = await driver.wait_finished("broken", None)

    assert done is not None
    assert done.channel is Channel.COMPLETED
    assert broken is not None
    assert (broken.channel, broken.job.last_error) == (Channel.FAILED, "boom")


async def test_wait_finished_returns_none_for_an_unknown_job(driver: Driver) -> None:
    assert await driver.wait_finished("nobody", None) is None


async def test_wait_finished_returns_a_pending_job_when_the_time_is_up(driver: Driver) -> None:
    await driver.push(persisted("a"), MINUTE)

    view = await driver.wait_finished("a", timedelta(milliseconds=20))

    assert view is not None
    assert view.channel is Channel.DELAYED


async def test_wait_finished_wakes_when_the_job_is_acked(driver: Driver) -> None:
    job = await popped(driver, "a", keep_result=MINUTE)
    waiting = asyncio.create_task(driver.wait_finished("a", timedelta(seconds=10)))
    await asyncio.sleep(0)  # let the wait take its first look

    job.result = b"42"
    assert await driver.ack(job) is True
    view = await asyncio.wait_for(waiting, 5)

    assert view is not None
    assert view.channel is Channel.COMPLETED
    assert view.job.result == b"42"


async def test_wait_finished_wakes_when_the_job_fails(driver: Driver) -> None:
    job = await popped(driver, "a")
    waiting = asyncio.create_task(driver.wait_finished("a", timedelta(seconds=10)))
    await asyncio.sleep(0)

    job.last_error = "nope"
    assert await driver.fail(job) is True
    view = await asyncio.wait_for(waiting, 5)

    assert view is not None
    assert (view.channel, view.job.last_error) == (Channel.FAILED, "nope")


async def test_wait_finished_returns_a_job_whose_last_lease_ran_out(
    driver: Driver, clock: FakeClock
) -> None:
    await popped(driver, "a", max_attempts=1)
    waiting = asyncio.create_task(driver.wait_finished("a", timedelta(seconds=10)))
    await asyncio.sleep(0)

    clock.advance(driver.lease)
    with pytest.raises(QueueEmpty):  # this pop finds the lease over and parks the job
        await driver.pop()
    view = await asyncio.wait_for(waiting, 5)

    assert view is not None
    assert view.channel is Channel.TIMEOUT


# --- prune -----------------------------------------------------------------------------------


async def test_prune_deletes_completed_jobs_once_their_result_expired(
    driver: Driver, clock: FakeClock
) -> None:
    await completed(driver, "short", MINUTE, b"1")
    await completed(driver, "long", 3 * MINUTE, b"2")

    early = await driver.prune(None, 100)
    clock.advance(MINUTE)
    on_time = await driver.prune(None, 100)

    assert (early, on_time) == (0, 1)
    assert await inspected(driver).get_job("short") is None
    assert await driver.info() == QueueInfo(completed=1)


async def test_prune_deletes_failed_and_timeout_jobs_after_the_retention(
    driver: Driver, clock: FakeClock
) -> None:
    await parked(driver, "failed")
    await driver.push(persisted("stuck"), timedelta(0))
    await driver.pop()
    clock.advance(driver.lease)
    await driver.push(persisted("fresh"), 10 * MINUTE)  # a pop recovers "stuck" into timeout
    with pytest.raises(QueueEmpty):
        await driver.pop()
    assert await driver.info() == QueueInfo(delayed=1, failed=1, timeout=1)

    kept = await driver.prune(None, 100)
    too_soon = await driver.prune(driver.lease + MINUTE, 100)
    clock.advance(MINUTE)
    pruned = await driver.prune(driver.lease + MINUTE, 100)

    assert (kept, too_soon, pruned) == (0, 0, 1)  # only "failed" was parked long enough
    assert await driver.info() == QueueInfo(delayed=1, timeout=1)
    clock.advance(driver.lease)
    assert await driver.prune(driver.lease + MINUTE, 100) == 1
    assert await driver.info() == QueueInfo(delayed=1)


async def test_prune_is_bounded_and_goes_oldest_first(driver: Driver, clock: FakeClock) -> None:
    for n in range(5):
        await completed(driver, f"job{n}", MINUTE + timedelta(seconds=n), b"1")
    clock.advance(2 * MINUTE)

    first = await driver.prune(None, 2)

    assert first == 2
    remaining = await inspected(driver).list_jobs(Channel.COMPLETED)
    assert [view.job.id for view in remaining] == ["job2", "job3", "job4"]
    assert await driver.prune(None, 10) == 3


async def test_prune_leaves_waiting_delayed_and_reserved_jobs(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("running"), timedelta(0))
    await driver.pop()
    await driver.push(persisted("waiting"), timedelta(0))
    await driver.push(persisted("delayed"), 10 * MINUTE)
    clock.advance(timedelta(seconds=1))

    assert await driver.prune(timedelta(0), 100) == 0

    assert await driver.info() == QueueInfo(waiting=1, delayed=1, reserved=1)
