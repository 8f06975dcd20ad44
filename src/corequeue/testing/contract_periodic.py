"""The Driver contract of periodic jobs: each slot of a schedule is enqueued exactly once.

`enqueue_slot` advances a schedule's last slot and pushes the slot's job in one atomic step of
the store, refuses a slot the store's clock has not reached, and refuses a slot at or before
the last one; `schedule_slots` and `forget_schedule` read and delete the last slots.

Usage, like `corequeue.testing.contract`: the `clock` (a FakeClock) and `driver` fixtures
(an empty store whose driver reads that clock), plus `driver_twin`: a second driver on the same
store and queue with the same clock, as another worker process would have (for a store that
lives in one process, `driver` itself).

    @pytest.fixture
    async def driver_twin(driver: Driver, clock: FakeClock) -> AsyncIterator[Driver]:
        twin = MyDriver(driver.url, name=driver.name, clock=clock)
        yield twin
        await twin.close()

    from corequeue.testing.contract_periodic import *  # noqa: F403
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from corequeue.drivers.base import Driver
from corequeue.errors import QueueEmpty
from corequeue.job import PersistedJob
from corequeue.periodic.registry import slot_job_id
from corequeue.testing import FakeClock

__all__ = [
    "test_a_failed_job_of_the_slot_is_replaced_when_the_slot_is_enqueued_again",
    "test_a_forgotten_schedule_takes_its_slot_again",
    "test_a_reserved_job_of_the_slot_is_left_as_it_is_and_the_slot_advances",
    "test_a_slot_is_enqueued_once",
    "test_a_slot_job_is_waiting_at_once_with_its_id",
    "test_a_slot_the_clock_has_not_reached_is_refused_to_the_microsecond",
    "test_an_older_slot_after_a_newer_one_is_refused",
    "test_concurrent_callers_enqueue_a_slot_once",
    "test_concurrent_callers_with_different_slots_push_one_job_per_advance",
    "test_forget_schedule_says_whether_there_was_a_slot",
    "test_schedule_slots_holds_the_last_slot_of_each_schedule",
    "test_schedules_keep_their_slots_apart",
    "test_the_driver_exposes_the_clock_it_was_given",
]

MICROSECOND = timedelta(microseconds=1)
SECOND_MS = 1_000
CALLERS = 20
"""How many calls race for one slot in the concurrency tests."""


def slot_job(name: str, slot_ms: int) -> PersistedJob:
    """Return the job of schedule `name`'s slot `slot_ms`, with the slot's id."""
    return PersistedJob(
        id=slot_job_id(name, slot_ms),
        type="tests.Periodic",
        value=b'{"n":1}',
        handle_timeout=timedelta(minutes=1),
    )


async def enqueue(driver: Driver, name: str, slot_ms: int) -> bool:
    """Enqueue the job of `name`'s slot `slot_ms` through `driver`."""
    return await driver.enqueue_slot(name, slot_ms, slot_job(name, slot_ms))


def test_the_driver_exposes_the_clock_it_was_given(driver: Driver, clock: FakeClock) -> None:
    assert driver.clock is clock


async def test_a_slot_is_enqueued_once(driver: Driver, clock: FakeClock) -> None:
    slot = clock.now_ms()

    first = await enqueue(driver, "s", slot)
    second = await enqueue(driver, "s", slot)

    assert (first, second) == (True, False)
    assert (await driver.info()).waiting == 1
    assert await driver.schedule_slots() == {"s": slot}


async def test_an_older_slot_after_a_newer_one_is_refused(driver: Driver, clock: FakeClock) -> None:
    newer = clock.now_ms()
    await enqueue(driver, "s", newer)

    assert not await enqueue(driver, "s", newer - SECOND_MS)
    assert await driver.schedule_slots() == {"s": newer}
    assert (await driver.info()).waiting == 1


async def test_a_slot_the_clock_has_not_reached_is_refused_to_the_microsecond(
    driver: Driver, clock: FakeClock
) -> None:
    slot = clock.now_ms() + SECOND_MS
    clock.advance(timedelta(milliseconds=SECOND_MS) - MICROSECOND)

    assert not await enqueue(driver, "s", slot)
    assert await driver.schedule_slots() == {}
    assert (await driver.info()).pending == 0

    clock.advance(MICROSECOND)
    assert await enqueue(driver, "s", slot)
    assert await driver.schedule_slots() == {"s": slot}


async def test_a_slot_job_is_waiting_at_once_with_its_id(driver: Driver, clock: FakeClock) -> None:
    clock.advance(timedelta(microseconds=999))  # inside a millisecond: still due at once
    recent, long_ago = clock.now_ms(), clock.now_ms() - 3_600 * SECOND_MS

    assert await enqueue(driver, "recent", recent)
    assert await enqueue(driver, "long-ago", long_ago)

    assert (await driver.info()).waiting == 2
    popped = {job.id: job for job in await driver.pop_many(2)}
    assert set(popped) == {slot_job_id("recent", recent), slot_job_id("long-ago", long_ago)}
    job = popped[slot_job_id("recent", recent)]
    assert (job.type, job.value) == ("tests.Periodic", b'{"n":1}')


async def test_schedule_slots_holds_the_last_slot_of_each_schedule(
    driver: Driver, clock: FakeClock
) -> None:
    now = clock.now_ms()

    await enqueue(driver, "a", now - 2 * SECOND_MS)
    await enqueue(driver, "a", now - SECOND_MS)
    await enqueue(driver, "b", now - 2 * SECOND_MS)

    assert await driver.schedule_slots() == {"a": now - SECOND_MS, "b": now - 2 * SECOND_MS}


async def test_schedules_keep_their_slots_apart(driver: Driver, clock: FakeClock) -> None:
    slot = clock.now_ms()

    assert await enqueue(driver, "a", slot)
    assert await enqueue(driver, "b", slot)

    assert (await driver.info()).waiting == 2


async def test_forget_schedule_says_whether_there_was_a_slot(
    driver: Driver, clock: FakeClock
) -> None:
    await enqueue(driver, "a", clock.now_ms())
    await enqueue(driver, "b", clock.now_ms())

    assert await driver.forget_schedule("a")
    assert not await driver.forget_schedule("a")
    assert not await driver.forget_schedule("never-seen")
    assert await driver.schedule_slots() == {"b": clock.now_ms()}


async def test_a_forgotten_schedule_takes_its_slot_again(driver: Driver, clock: FakeClock) -> None:
    slot = clock.now_ms()
    await enqueue(driver, "s", slot)
    assert await driver.ack(await driver.pop())

    await driver.forget_schedule("s")

    assert await enqueue(driver, "s", slot)
    assert (await driver.pop()).id == slot_job_id("s", slot)


async def test_a_reserved_job_of_the_slot_is_left_as_it_is_and_the_slot_advances(
    driver: Driver, clock: FakeClock
) -> None:
    slot = clock.now_ms()
    await enqueue(driver, "s", slot)
    held = await driver.pop()
    await driver.forget_schedule("s")

    # The push finds the id reserved and leaves it (as push() does); the slot still advances:
    # its job was enqueued, and is running.
    assert await enqueue(driver, "s", slot)

    assert await driver.schedule_slots() == {"s": slot}
    info = await driver.info()
    assert (info.waiting, info.reserved) == (0, 1)
    assert await driver.ack(held)


async def test_a_failed_job_of_the_slot_is_replaced_when_the_slot_is_enqueued_again(
    driver: Driver, clock: FakeClock
) -> None:
    slot = clock.now_ms()
    await enqueue(driver, "s", slot)
    assert await driver.fail(await driver.pop())
    await driver.forget_schedule("s")

    assert await enqueue(driver, "s", slot)

    info = await driver.info()
    assert (info.waiting, info.failed) == (1, 0)


async def test_concurrent_callers_enqueue_a_slot_once(
    driver: Driver, driver_twin: Driver, clock: FakeClock
) -> None:
    slot = clock.now_ms()
    callers = [driver, driver_twin] * (CALLERS // 2)

    results = await asyncio.gather(*(enqueue(caller, "s", slot) for caller in callers))

    assert results.count(True) == 1
    assert (await driver.info()).waiting == 1
    assert await driver_twin.schedule_slots() == {"s": slot}


async def test_concurrent_callers_with_different_slots_push_one_job_per_advance(
    driver: Driver, driver_twin: Driver, clock: FakeClock
) -> None:
    now = clock.now_ms()
    # Slots in an order that is neither rising nor falling, each asked for twice.
    slots = [now - (number * 7 % CALLERS) * SECOND_MS for number in range(CALLERS)] * 2
    callers = [driver, driver_twin] * CALLERS

    results = await asyncio.gather(
        *(enqueue(caller, "s", slot) for caller, slot in zip(callers, slots, strict=True))
    )

    assert await driver.schedule_slots() == {"s": now}
    enqueued = {slot for slot, done in zip(slots, results, strict=True) if done}
    assert results.count(True) == len(enqueued)  # no slot twice
    popped = await driver.pop_many(CALLERS * 2)
    assert sorted(job.id for job in popped) == sorted(slot_job_id("s", s) for s in enqueued)
    with pytest.raises(QueueEmpty):
        await driver.pop()
