"""The running-job part of the Driver contract: progress and cancel requests ride on renewals;
worker heartbeats and the fleet-wide throughput counters.

Use it like `corequeue.testing.contract` (same fixtures), in a module of its own:

    from corequeue.testing.contract_running import *  # noqa: F403
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from corequeue.drivers.base import (
    THROUGHPUT_HISTORY,
    THROUGHPUT_INTERVAL,
    Channel,
    Driver,
    InspectDriver,
    QueueInfo,
    Throughput,
    WorkerInfo,
    instant_of_ms,
    interval_of,
)
from corequeue.job import PersistedJob, Progress
from corequeue.testing import FakeClock
from corequeue.testing.jobs import persisted


def inspected(driver: Driver) -> InspectDriver:
    """Return `driver` as an InspectDriver; skip the test for a driver without inspection."""
    if not isinstance(driver, InspectDriver):
        pytest.skip(f"{type(driver).__name__} does not implement InspectDriver")
    return driver


async def running(driver: Driver, job_id: str, **fields: Any) -> PersistedJob:
    """Push a job and pop it: the holder's copy (nothing else may be waiting)."""
    await driver.push(persisted(job_id, **fields), timedelta(0))
    job = await driver.pop()
    assert job.id == job_id
    return job


# --- cancel requests -------------------------------------------------------------------------


async def test_cancel_of_a_reserved_job_is_reported_by_the_next_renewal(driver: Driver) -> None:
    job = await running(driver, "a")

    recorded = await driver.cancel("a")
    lost = await driver.renew_many([job])

    assert recorded is True
    assert lost == []
    assert job.cancel_requested is True
    assert await driver.info() == QueueInfo(reserved=1)  # the holder decides what happens


async def test_renewal_without_a_request_reports_none(driver: Driver) -> None:
    job = await running(driver, "a")
    other = await running(driver, "b")
    await driver.cancel("b")

    await driver.renew_many([job, other])

    assert (job.cancel_requested, other.cancel_requested) == (False, True)


async def test_a_request_for_an_earlier_reservation_does_not_reach_a_later_one(
    driver: Driver, clock: FakeClock
) -> None:
    first = await running(driver, "a", max_attempts=2)
    assert await driver.cancel("a") is True
    clock.advance(driver.lease + timedelta(milliseconds=1))
    second = await driver.pop()  # the first lease ran out: a new reservation, a new token

    lost = await driver.renew_many([first, second])

    assert lost == [first]
    assert second.cancel_requested is False


async def test_a_request_survives_until_the_holder_settles(driver: Driver) -> None:
    job = await running(driver, "a")
    await driver.cancel("a")
    await driver.renew_many([job])

    job.last_error = "cancelled"
    assert await driver.fail(job) is True

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert (view.channel, view.job.last_error) == (Channel.FAILED, "cancelled")


async def test_cancel_of_a_finished_or_unknown_job_records_nothing(driver: Driver) -> None:
    job = await running(driver, "a")
    job.last_error = "boom"
    await driver.fail(job)

    assert await driver.cancel("a") is False
    assert await driver.cancel("nobody") is False


# --- progress -------------------------------------------------------------------------------


async def test_progress_travels_with_the_renewal_and_shows_in_inspection(
    driver: Driver,
) -> None:
    job = await running(driver, "a")
    job.progress = Progress(0.25, "page 1 of 4")

    assert await driver.renew_many([job]) == []

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert view.job.progress == Progress(0.25, "page 1 of 4")
    listed = await inspected(driver).list_jobs(Channel.RESERVED)
    assert [v.job.progress for v in listed] == [Progress(0.25, "page 1 of 4")]


async def test_a_renewal_without_progress_keeps_the_stored_one(driver: Driver) -> None:
    job = await running(driver, "a")
    job.progress = Progress(0.5, "half")
    await driver.renew_many([job])
    job.progress = None

    await driver.renew_many([job])

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert view.job.progress == Progress(0.5, "half")


async def test_a_stale_holder_stores_no_progress(driver: Driver, clock: FakeClock) -> None:
    first = await running(driver, "a", max_attempts=2)
    clock.advance(driver.lease + timedelta(milliseconds=1))
    second = await driver.pop()
    first.progress = Progress(0.9, "stale")

    assert await driver.renew_many([first, second]) == [first]

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert view.job.progress is None


async def test_a_job_pushed_again_starts_without_progress(driver: Driver) -> None:
    job = await running(driver, "a")
    job.progress = Progress(1.0, "done")
    await driver.renew_many([job])
    job.last_error = "boom"
    await driver.fail(job)

    await driver.push(persisted("a"), timedelta(0))

    view = await inspected(driver).get_job("a")
    assert view is not None
    assert view.job.progress is None


# --- worker heartbeats ------------------------------------------------------------------------


def worker(worker_id: str, running: int = 0) -> WorkerInfo:
    """A heartbeat record of worker `worker_id` (last_seen is the store's to set)."""
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return WorkerInfo(worker_id, "host-1", 4242, started, started, running)


async def test_a_beating_worker_is_listed_as_last_seen_now(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.beat(worker("w1", running=3))

    listed = await driver.workers()

    assert [(w.id, w.hostname, w.pid, w.running) for w in listed] == [("w1", "host-1", 4242, 3)]
    assert listed[0].started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert listed[0].last_seen == instant_of_ms(clock.now_ms())


async def test_a_new_beat_updates_the_record(driver: Driver, clock: FakeClock) -> None:
    await driver.beat(worker("w1", running=1))
    clock.advance(timedelta(seconds=5))

    await driver.beat(worker("w1", running=2))

    listed = await driver.workers()
    assert [(w.id, w.running, w.last_seen) for w in listed] == [
        ("w1", 2, instant_of_ms(clock.now_ms()))
    ]


async def test_a_worker_silent_for_a_lease_is_gone(driver: Driver, clock: FakeClock) -> None:
    await driver.beat(worker("quiet"))
    await driver.beat(worker("busy"))
    clock.advance(driver.lease - timedelta(milliseconds=1))
    await driver.beat(worker("busy"))

    still = [w.id for w in await driver.workers()]
    clock.advance(timedelta(milliseconds=2))
    later = [w.id for w in await driver.workers()]

    assert still == ["busy", "quiet"]
    assert later == ["busy"]


async def test_a_worker_that_stops_cleanly_is_forgotten(driver: Driver) -> None:
    await driver.beat(worker("w1"))
    await driver.beat(worker("w2"))

    await driver.forget_worker("w1")

    assert [w.id for w in await driver.workers()] == ["w2"]


# --- fleet-wide throughput --------------------------------------------------------------------


async def test_finished_counts_add_up_per_interval(driver: Driver, clock: FakeClock) -> None:
    clock.advance(timedelta(milliseconds=-(clock.now_ms() % 30_000)))  # an interval's start
    start = instant_of_ms(clock.now_ms())
    await driver.count_finished(3, 1, 0)
    clock.advance(timedelta(seconds=29))
    await driver.count_finished(2, 0, 1)
    clock.advance(timedelta(seconds=1))
    await driver.count_finished(5, 0, 0)

    counted = await driver.throughput(start - timedelta(hours=1))

    assert counted == [
        Throughput(start, processed=5, retried=1, failed=1),
        Throughput(start + THROUGHPUT_INTERVAL, processed=5),
    ]
    assert await driver.throughput(start + THROUGHPUT_INTERVAL) == counted[1:]


async def test_counts_older_than_the_history_are_deleted(driver: Driver, clock: FakeClock) -> None:
    first = instant_of_ms(interval_of(clock.now_ms()))
    await driver.count_finished(1, 0, 0)
    clock.advance(THROUGHPUT_HISTORY + THROUGHPUT_INTERVAL)

    await driver.count_finished(0, 0, 2)

    counted = await driver.throughput(first)
    assert [(c.processed, c.failed) for c in counted] == [(0, 2)]
