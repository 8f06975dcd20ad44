"""The flow-control part of the Driver contract: priorities, pause and resume.

Import it like `corequeue.testing.contract` (same `driver` and `clock` fixtures):

    from corequeue.testing.contract_flow import *  # noqa: F403
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from corequeue.drivers.base import Driver, QueueInfo
from corequeue.errors import QueueEmpty
from corequeue.testing import FakeClock
from corequeue.testing.jobs import persisted, pop_all

SECOND = timedelta(seconds=1)


# --- priority -----------------------------------------------------------------------------


async def test_higher_priority_pops_first_among_due_jobs(driver: Driver) -> None:
    for job_id, priority in [("low", -5), ("plain", 0), ("high", 100), ("lowest", -100)]:
        await driver.push(persisted(job_id, priority=priority), timedelta(0))

    assert await pop_all(driver) == ["high", "plain", "low", "lowest"]


async def test_equal_priorities_pop_first_in_first_out(driver: Driver) -> None:
    for job_id in ["a", "b", "c"]:
        await driver.push(persisted(job_id, priority=3), timedelta(0))
    await driver.push(persisted("d", priority=9), timedelta(0))

    assert await pop_all(driver) == ["d", "a", "b", "c"]


async def test_equal_priorities_pop_in_due_order(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("later", priority=2), 2 * SECOND)
    await driver.push(persisted("sooner", priority=2), SECOND)
    await driver.push(persisted("now", priority=2), timedelta(0))

    clock.advance(3 * SECOND)

    assert await pop_all(driver) == ["now", "sooner", "later"]


async def test_delayed_high_priority_job_waits_for_its_due_time(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("urgent", priority=100), SECOND)
    await driver.push(persisted("plain"), timedelta(0))

    assert await pop_all(driver) == ["plain"]
    clock.advance(SECOND)
    assert await pop_all(driver) == ["urgent"]


async def test_priority_survives_retry_and_release(driver: Driver) -> None:
    await driver.push(persisted("high", priority=50, max_attempts=3), timedelta(0))
    high = await driver.pop()
    assert await driver.retry(high)
    await driver.push(persisted("plain"), timedelta(0))

    assert await pop_all(driver) == ["high", "plain"]

    await driver.push(persisted("high", priority=50), timedelta(0))
    await driver.push(persisted("plain"), timedelta(0))
    held = await driver.pop()
    assert held.id == "high"
    assert await driver.release(held)

    first = await driver.pop()
    assert (first.id, first.priority) == ("high", 50)


async def test_popped_job_keeps_its_priority_and_group(driver: Driver) -> None:
    await driver.push(persisted("a", priority=-7, group="tenant-1"), timedelta(0))

    popped = await driver.pop()

    assert (popped.priority, popped.group) == (-7, "tenant-1")


async def test_pop_many_takes_the_highest_priorities(driver: Driver) -> None:
    for index in range(6):
        await driver.push(persisted(f"j{index}", priority=index % 3), timedelta(0))

    popped = await driver.pop_many(4)

    assert [job.id for job in popped] == ["j2", "j5", "j1", "j4"]


# --- pause and resume ---------------------------------------------------------------------


async def test_new_queue_is_not_paused(driver: Driver) -> None:
    assert not await driver.is_paused()


async def test_paused_queue_accepts_pushes_and_hands_out_nothing(driver: Driver) -> None:
    await driver.pause()
    await driver.push(persisted("a"), timedelta(0))

    with pytest.raises(QueueEmpty):
        await driver.pop()
    assert await driver.is_paused()
    assert await driver.info() == QueueInfo(waiting=1)


async def test_resumed_queue_hands_out_what_waited(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    await driver.pause()

    await driver.resume()

    assert not await driver.is_paused()
    assert await pop_all(driver) == ["a"]


async def test_pause_lets_reserved_jobs_be_settled(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    await driver.push(persisted("b"), timedelta(0))
    held = await driver.pop()

    await driver.pause()

    assert await driver.renew(held)
    assert await driver.ack(held)
    with pytest.raises(QueueEmpty):
        await driver.pop()
    assert await driver.info() == QueueInfo(waiting=1)


async def test_pause_and_resume_are_idempotent(driver: Driver) -> None:
    await driver.pause()
    await driver.pause()
    assert await driver.is_paused()

    await driver.resume()
    await driver.resume()

    assert not await driver.is_paused()


async def test_paused_queue_still_recovers_expired_leases(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a", max_attempts=2), timedelta(0))
    await driver.pop()
    await driver.pause()

    clock.advance(driver.lease + SECOND)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    assert (await driver.info()).reserved == 0
    await driver.resume()
    assert (await driver.pop()).attempts == 2
