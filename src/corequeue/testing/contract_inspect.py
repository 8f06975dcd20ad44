"""The InspectDriver part of the Driver contract: what the dashboard reads and does.

Use it like `corequeue.testing.contract` (same fixtures), in a module of its own:

    from corequeue.testing.contract_inspect import *  # noqa: F403

A driver that does not implement InspectDriver skips these tests. Time comes from the
FakeClock, so due times and lease expiries are exact.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from corequeue.drivers.base import (
    LEASE_EXPIRED,
    MAX_LIST_LIMIT,
    Channel,
    Driver,
    GroupCounts,
    InspectDriver,
    JobView,
    QueueInfo,
    instant_of_ms,
)
from corequeue.errors import QueueEmpty
from corequeue.limits import Limits
from corequeue.testing import FakeClock
from corequeue.testing.jobs import persisted, with_every_field

MINUTE = timedelta(minutes=1)


def inspected(driver: Driver) -> InspectDriver:
    """Return `driver` as an InspectDriver; skip the test for a driver without inspection."""
    if not isinstance(driver, InspectDriver):
        pytest.skip(f"{type(driver).__name__} does not implement InspectDriver")
    return driver


async def park_in_failed(driver: Driver, job_id: str, error: str = "boom") -> None:
    """Push a job, pop it and fail it with `error` (nothing else may be waiting)."""
    await driver.push(persisted(job_id), timedelta(0))
    job = await driver.pop()
    assert job.id == job_id
    job.last_error = error
    assert await driver.fail(job) is True


async def ids(driver: Driver, channel: Channel, **options: object) -> list[str]:
    """Return the ids `list_jobs()` gives for `channel` with `options`."""
    views = await inspected(driver).list_jobs(channel, **options)  # type: ignore[arg-type]
    return [view.job.id for view in views]


# --- list_jobs ----------------------------------------------------------------------------


async def test_list_jobs_shows_every_channel_in_channel_order(
    driver: Driver, clock: FakeClock
) -> None:
    start = instant_of_ms(clock.now_ms())
    await driver.push(persisted("r"), timedelta(0))
    await driver.pop()
    await park_in_failed(driver, "f1")
    await park_in_failed(driver, "f2")
    for job_id in ["w1", "w2", "w3"]:
        await driver.push(persisted(job_id), timedelta(0))
    await driver.push(persisted("d2"), 2 * MINUTE)
    await driver.push(persisted("d1"), MINUTE)

    listed = {channel: await inspected(driver).list_jobs(channel) for channel in Channel}

    assert {channel: [v.job.id for v in views] for channel, views in listed.items()} == {
        Channel.WAITING: ["w1", "w2", "w3"],
        Channel.DELAYED: ["d1", "d2"],
        Channel.RESERVED: ["r"],
        Channel.FAILED: ["f1", "f2"],
        Channel.TIMEOUT: [],
        Channel.COMPLETED: [],
    }
    assert [v.due_at for v in listed[Channel.DELAYED]] == [start + MINUTE, start + 2 * MINUTE]
    assert [v.due_at for v in listed[Channel.RESERVED]] == [start + driver.lease]
    assert [v.due_at for v in listed[Channel.WAITING]] == [None, None, None]
    assert [v.job.last_error for v in listed[Channel.FAILED]] == ["boom", "boom"]
    assert all(v.channel is channel for channel, views in listed.items() for v in views)


async def test_listed_job_is_the_stored_envelope(driver: Driver) -> None:
    job = with_every_field()
    await driver.push(job, timedelta(0))

    listed = await inspected(driver).list_jobs(Channel.WAITING)

    assert listed == [JobView(job, Channel.WAITING)]


async def test_list_jobs_pages(driver: Driver) -> None:
    for n in range(5):
        await driver.push(persisted(f"j{n}"), timedelta(0))

    assert await ids(driver, Channel.WAITING, offset=1, limit=2) == ["j1", "j2"]
    assert await ids(driver, Channel.WAITING, offset=4, limit=2) == ["j4"]
    assert await ids(driver, Channel.WAITING, offset=5) == []


async def test_list_jobs_filters_by_type_before_paging(driver: Driver) -> None:
    for n in range(6):
        await driver.push(persisted(f"j{n}", type="app.Odd" if n % 2 else "app.Even"), MINUTE)

    odd = await ids(driver, Channel.DELAYED, job_type="app.Odd")
    page = await ids(driver, Channel.DELAYED, job_type="app.Even", offset=1, limit=1)

    assert (odd, page) == (["j1", "j3", "j5"], ["j2"])
    assert await ids(driver, Channel.DELAYED, job_type="app.Other") == []


async def test_delayed_job_is_listed_as_waiting_once_due(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("later"), MINUTE)
    await driver.push(persisted("now"), timedelta(0))

    clock.advance(MINUTE)

    assert await ids(driver, Channel.WAITING) == ["now", "later"]
    assert await ids(driver, Channel.DELAYED) == []


async def test_timed_out_job_is_listed_with_its_lease_error(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("a", max_attempts=1), timedelta(0))
    await driver.pop()
    clock.advance(driver.lease)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    [view] = await inspected(driver).list_jobs(Channel.TIMEOUT)

    assert (view.job.id, view.job.last_error, view.channel) == ("a", LEASE_EXPIRED, "timeout")
    assert view.due_at is None


@pytest.mark.parametrize(
    ("channel", "offset", "limit", "message"),
    [
        ("everything", 0, 10, "unknown channel"),
        ("waiting", -1, 10, "offset"),
        ("waiting", 0, 0, "limit"),
        ("waiting", 0, MAX_LIST_LIMIT + 1, "limit"),
    ],
)
async def test_list_jobs_rejects_a_page_it_cannot_give(
    driver: Driver, channel: str, offset: int, limit: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await inspected(driver).list_jobs(channel, offset=offset, limit=limit)


# --- get_job ------------------------------------------------------------------------------


async def test_get_job_finds_a_job_in_any_channel(driver: Driver, clock: FakeClock) -> None:
    start = instant_of_ms(clock.now_ms())
    await park_in_failed(driver, "failed", "it broke")
    await driver.push(persisted("reserved"), timedelta(0))
    await driver.pop()
    await driver.push(persisted("waiting"), timedelta(0))
    await driver.push(persisted("delayed", attempts=2, max_attempts=3), MINUTE)

    found = {job_id: await inspected(driver).get_job(job_id) for job_id in ["failed", "delayed"]}
    channels = {
        job_id: view.channel if (view := await inspected(driver).get_job(job_id)) else None
        for job_id in ["failed", "reserved", "waiting", "delayed", "unknown"]
    }

    assert channels == {
        "failed": Channel.FAILED,
        "reserved": Channel.RESERVED,
        "waiting": Channel.WAITING,
        "delayed": Channel.DELAYED,
        "unknown": None,
    }
    assert found["failed"] is not None
    assert found["failed"].job.last_error == "it broke"
    assert found["delayed"] == JobView(
        persisted("delayed", attempts=2, max_attempts=3), Channel.DELAYED, start + MINUTE
    )


# --- delete_job ---------------------------------------------------------------------------


async def test_delete_job_removes_one_waiting_delayed_or_failed_job(driver: Driver) -> None:
    await park_in_failed(driver, "f")
    await driver.push(persisted("w"), timedelta(0))
    await driver.push(persisted("keep"), timedelta(0))
    await driver.push(persisted("d"), MINUTE)

    deleted = [await inspected(driver).delete_job(job_id) for job_id in ["f", "w", "d", "f"]]

    assert deleted == [True, True, True, False]
    assert await driver.info() == QueueInfo(waiting=1)
    assert await inspected(driver).get_job("f") is None


async def test_delete_job_leaves_a_reserved_job_alone(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    job = await driver.pop()

    assert await inspected(driver).delete_job("a") is False
    assert await driver.info() == QueueInfo(reserved=1)
    assert await driver.ack(job) is True


async def test_deleted_job_id_can_be_pushed_again(driver: Driver) -> None:
    await park_in_failed(driver, "a")
    await inspected(driver).delete_job("a")

    await driver.push(persisted("a", type="app.New"), timedelta(0))

    assert (await driver.pop()).type == "app.New"


# --- retry_job ----------------------------------------------------------------------------


async def test_retry_job_moves_one_failed_job_back_to_waiting(driver: Driver) -> None:
    await park_in_failed(driver, "a", "first")
    await park_in_failed(driver, "b", "second")

    assert await inspected(driver).retry_job("b") is True

    assert await driver.info() == QueueInfo(waiting=1, failed=1)
    again = await driver.pop()
    assert (again.id, again.attempts, again.last_error) == ("b", 1, "second")


async def test_retry_job_moves_a_timed_out_job_back_to_waiting(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("a", max_attempts=1), timedelta(0))
    await driver.pop()
    clock.advance(driver.lease)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    assert await inspected(driver).retry_job("a") is True

    assert (await driver.pop()).id == "a"


async def test_retry_job_ignores_jobs_that_are_not_failed(driver: Driver) -> None:
    await driver.push(persisted("w"), timedelta(0))
    await driver.push(persisted("d"), MINUTE)

    retried = [await inspected(driver).retry_job(job_id) for job_id in ["w", "d", "unknown"]]

    assert retried == [False, False, False]
    assert await driver.info() == QueueInfo(waiting=1, delayed=1)


async def test_held_back_jobs_are_listed_and_found_as_waiting(driver: InspectDriver) -> None:
    driver.set_limits(Limits(group_concurrency=1))
    for job_id in ["b0", "b1", "b2"]:
        await driver.push(persisted(job_id, group="B"), timedelta(0))
    await driver.pop_many(10)

    listed = await driver.list_jobs("waiting")
    found = await driver.get_job("b2")

    assert [view.job.id for view in listed] == ["b1", "b2"]
    assert found is not None
    assert found.channel is Channel.WAITING
    assert await driver.delete_job("b1")
    assert await driver.info() == QueueInfo(waiting=1, reserved=1)


async def test_group_counts_give_waiting_and_reserved_jobs_by_group(
    driver: InspectDriver, clock: FakeClock
) -> None:
    driver.set_limits(Limits(group_concurrency=1))
    for job_id, group in [("a0", "A"), ("a1", "A"), ("a2", "A"), ("b0", "B"), ("free", None)]:
        await driver.push(persisted(job_id, group=group), timedelta(0))
    await driver.push(persisted("later", group="C"), timedelta(minutes=1))
    await driver.pop_many(2)  # a0 and b0; a1 and a2 are held back

    counts = await driver.group_counts()

    assert counts == {"A": GroupCounts(waiting=2, reserved=1), "B": GroupCounts(reserved=1)}
    clock.advance(timedelta(minutes=1))
    assert (await driver.group_counts())["C"] == GroupCounts(waiting=1)


__all__ = sorted(name for name in dict(globals()) if name.startswith("test_"))
"""Every test of this module, for `import *`."""
