"""The flow-control part of the Driver contract: priorities, pause and resume, limits.

Import it like `corequeue.testing.contract` (same `driver` and `clock` fixtures):

    from corequeue.testing.contract_flow import *  # noqa: F403
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from corequeue.drivers.base import Driver, QueueInfo
from corequeue.errors import QueueEmpty
from corequeue.job import PersistedJob
from corequeue.limits import HeldBack, Limits, Rate
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


# --- limits -------------------------------------------------------------------------------
#
# Each case sets the popping driver's limits (`set_limits`); the store enforces them at pop.


def group_job(job_id: str, group: str | None, **fields: Any) -> PersistedJob:
    """Return a job of `group` (None: no group)."""
    return persisted(job_id, group=group, **fields)


async def push_all(driver: Driver, *jobs: PersistedJob) -> None:
    for job in jobs:
        await driver.push(job, timedelta(0))


async def test_concurrency_limit_holds_jobs_back_until_a_slot_frees(driver: Driver) -> None:
    driver.set_limits(Limits(concurrency=2))
    await push_all(driver, *(persisted(job_id) for job_id in "abc"))

    first = await driver.pop_many(3)
    with pytest.raises(QueueEmpty):
        await driver.pop()
    assert await driver.ack(first[0])
    third = await driver.pop()

    assert [job.id for job in first] == ["a", "b"]
    assert (third.id, third.attempts) == ("c", 1)
    assert await driver.info() == QueueInfo(reserved=2)
    assert driver.held_back()[HeldBack.CONCURRENCY] >= 1


@pytest.mark.parametrize("settle", ["fail", "retry", "release"])
async def test_every_settle_frees_a_concurrency_slot(driver: Driver, settle: str) -> None:
    driver.set_limits(Limits(concurrency=1))
    await push_all(driver, persisted("a", max_attempts=2), persisted("b"))
    held = await driver.pop()

    assert await getattr(driver, settle)(held)

    assert (await driver.pop()).id in ({"b"} if settle == "fail" else {"a", "b"})


async def test_an_expired_lease_frees_its_slot(driver: Driver, clock: FakeClock) -> None:
    driver.set_limits(Limits(concurrency=1, group_concurrency=1))
    await push_all(driver, group_job("a", "g"), group_job("b", "g"))
    await driver.pop()  # its worker is killed: no renewal

    with pytest.raises(QueueEmpty):
        await driver.pop()
    clock.advance(driver.lease + SECOND)

    assert (await driver.pop()).id == "b"


async def test_group_at_its_limit_does_not_block_other_groups(driver: Driver) -> None:
    driver.set_limits(Limits(group_concurrency=1))
    jobs = [group_job(f"a{index}", "A") for index in range(50)]
    await push_all(driver, *jobs, group_job("b0", "B"), group_job("free", None))

    popped = await driver.pop_many(10)

    assert [job.id for job in popped] == ["a0", "b0", "free"]
    assert driver.held_back()[HeldBack.GROUP_CONCURRENCY] >= 1


async def test_a_held_back_job_keeps_its_place_and_costs_no_attempt(driver: Driver) -> None:
    driver.set_limits(Limits(group_concurrency=1))
    await push_all(driver, group_job("a0", "A"), group_job("a1", "A"), group_job("b0", "B"))
    first = await driver.pop_many(10)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    assert await driver.ack(first[0])
    later = await driver.pop()

    assert [job.id for job in first] == ["a0", "b0"]
    assert (later.id, later.attempts) == ("a1", 1)


async def test_small_group_starts_long_before_a_large_group_drains(driver: Driver) -> None:
    driver.set_limits(Limits(group_concurrency=2))
    await push_all(driver, *(group_job(f"a{index:03}", "A") for index in range(300)))
    await push_all(driver, *(group_job(f"b{index}", "B") for index in range(4)))
    started: list[str] = []

    while not {"b0", "b1", "b2", "b3"} <= set(started):
        popped = await driver.pop_many(4)
        started += [job.id for job in popped]
        assert await driver.ack_many(popped) == []

    assert len(started) <= 8


async def test_rate_limit_spaces_starts_on_the_store_clock(
    driver: Driver, clock: FakeClock
) -> None:
    driver.set_limits(Limits(rate=Rate(2, SECOND)))
    await push_all(driver, *(persisted(job_id) for job_id in "abcde"))

    first = await driver.pop_many(5)
    with pytest.raises(QueueEmpty):
        await driver.pop()
    clock.advance(SECOND / 2)
    second = await driver.pop_many(5)
    clock.advance(SECOND)
    third = await driver.pop_many(5)

    assert [job.id for job in first + second + third] == ["a", "b", "c"]
    assert driver.held_back()[HeldBack.RATE] >= 1


async def test_rate_counts_starts_of_every_pop(driver: Driver, clock: FakeClock) -> None:
    driver.set_limits(Limits(rate=Rate(10, SECOND)))
    await push_all(driver, *(persisted(f"j{index:02}") for index in range(40)))
    started = 0

    for _ in range(20):  # two seconds in steps of 100 ms
        started += len(await driver.pop_many(40))
        clock.advance(SECOND / 10)

    assert started == 20


async def test_group_rate_limits_each_group_apart(driver: Driver, clock: FakeClock) -> None:
    driver.set_limits(Limits(group_rate=Rate(1, SECOND)))
    await push_all(driver, group_job("a0", "A"), group_job("a1", "A"), group_job("b0", "B"))

    first = await driver.pop_many(10)
    with pytest.raises(QueueEmpty):
        await driver.pop()
    clock.advance(SECOND)
    second = await driver.pop_many(10)

    assert [job.id for job in first] == ["a0", "b0"]
    assert [job.id for job in second] == ["a1"]
    assert driver.held_back()[HeldBack.GROUP_RATE] >= 1


async def test_limits_can_be_lifted(driver: Driver) -> None:
    driver.set_limits(Limits(concurrency=1))
    await push_all(driver, persisted("a"), persisted("b"))
    await driver.pop()

    driver.set_limits(None)

    assert (await driver.pop()).id == "b"


async def test_limits_keep_priority_order(driver: Driver) -> None:
    driver.set_limits(Limits(concurrency=1, group_concurrency=1))
    await push_all(driver, group_job("low", "A"), group_job("high", "B", priority=5))

    assert await pop_all(driver) == ["high", "low"]


# --- jobs held back stay waiting, for every operation -------------------------------------


async def hold_back_b1(driver: Driver) -> None:
    """Leave job "b1" of group B held back: B's "b0" is reserved under a group limit."""
    driver.set_limits(Limits(group_concurrency=1))
    await push_all(driver, group_job("b0", "B"), group_job("b1", "B"), group_job("c0", "C"))
    assert [job.id for job in await driver.pop_many(10)] == ["b0", "c0"]


async def test_held_back_jobs_count_as_waiting(driver: Driver) -> None:
    await hold_back_b1(driver)

    assert await driver.info() == QueueInfo(waiting=1, reserved=2)


async def test_held_back_job_can_be_cancelled(driver: Driver) -> None:
    await hold_back_b1(driver)

    assert await driver.cancel("b1")

    assert await driver.info() == QueueInfo(reserved=2)
    driver.set_limits(None)
    with pytest.raises(QueueEmpty):
        await driver.pop()


async def test_pushing_a_held_back_id_again_changes_nothing(driver: Driver) -> None:
    await hold_back_b1(driver)

    await driver.push(group_job("b1", "B", priority=50), timedelta(0))

    assert await driver.info() == QueueInfo(waiting=1, reserved=2)


async def test_flushing_waiting_deletes_held_back_jobs(driver: Driver) -> None:
    await hold_back_b1(driver)

    await driver.flush("waiting")

    assert await driver.info() == QueueInfo(reserved=2)


async def test_a_worker_without_limits_takes_held_back_jobs(driver: Driver) -> None:
    await hold_back_b1(driver)

    driver.set_limits(None)

    assert (await driver.pop()).id == "b1"


async def test_pause_and_resume_keep_the_limits(driver: Driver) -> None:
    driver.set_limits(Limits(concurrency=1))
    await push_all(driver, persisted("a"), persisted("b"))
    await driver.pause()
    await driver.resume()

    assert [job.id for job in await driver.pop_many(5)] == ["a"]


__all__ = sorted(name for name in dict(globals()) if name.startswith("test_"))
"""Every test of this module, for `import *`."""
