"""The Driver contract on due times: a delayed job is never handed out early, to the microsecond.

A job pushed with delay *d* at instant *t* of the store's clock is popped no earlier than
*t + d*. A store that compares microseconds pops it at *t + d*; one that keeps whole
milliseconds rounds the due instant up, so it pops it by the first whole millisecond at or after
*t + d*. Both pass; a store that rounds down anywhere does not.

Usage, like `corequeue.testing.contract`: the `clock` (a FakeClock) and `driver` fixtures, plus a
`store_timed` fixture for the test on the store's own clock: it yields a `StoreTimed`, a driver
built with no clock (so it reads its store's clock) and a function that reads that same clock.

    @pytest.fixture
    async def store_timed() -> AsyncIterator[StoreTimed]:
        driver = MyDriver(pop_timeout=timedelta(milliseconds=100))
        yield StoreTimed(driver, read_my_store_clock_us)
        await driver.close()

    from corequeue.testing.contract_timing import *  # noqa: F403
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, NamedTuple

import pytest

from corequeue.drivers.base import Driver
from corequeue.errors import QueueEmpty
from corequeue.job import PersistedJob
from corequeue.testing import FakeClock

__all__ = [
    "StoreTimed",
    "test_delay_is_never_short_by_a_microsecond",
    "test_no_job_is_popped_before_its_due_instant_on_the_store_clock",
    "test_retry_backoff_is_never_short_by_a_microsecond",
    "test_zero_delay_is_due_at_once_inside_a_millisecond",
]

MICROSECOND = timedelta(microseconds=1)
MILLISECOND = timedelta(milliseconds=1)

WALL_CLOCK_JOBS = 300
"""How many jobs the test on the store's own clock dispatches, one after the other."""


class StoreTimed(NamedTuple):
    """A driver that reads its store's own clock, and a way to read that clock.

    Attributes:
        driver: A driver built with no clock, on an empty store.
        now_us: Reads the store's clock, in microseconds since the Unix epoch (for Redis the
            server's TIME, for PostgreSQL its clock_timestamp(), for an embedded store the
            machine's clock).
    """

    driver: Driver
    now_us: Callable[[], Awaitable[int]]


def job(job_id: str, **fields: Any) -> PersistedJob:
    """Return a small persisted job with id `job_id` (and `fields` replacing the defaults)."""
    return PersistedJob(
        id=job_id, type="tests.Job", value=b'{"n":1}', handle_timeout=timedelta(minutes=1), **fields
    )


# Instants inside a millisecond (microseconds past it) and delays that end inside one.
SUB_MILLISECOND_CASES = [
    pytest.param(0, MILLISECOND, id="x.000+1ms"),
    pytest.param(1, MILLISECOND, id="x.001+1ms"),
    pytest.param(999, MILLISECOND, id="x.999+1ms"),
    pytest.param(500, timedelta(microseconds=1_700), id="x.500+1.7ms"),
    pytest.param(999, timedelta(seconds=2, microseconds=1), id="x.999+2.000001s"),
]


@pytest.mark.parametrize(("offset_us", "delay"), SUB_MILLISECOND_CASES)
async def test_delay_is_never_short_by_a_microsecond(
    driver: Driver, clock: FakeClock, offset_us: int, delay: timedelta
) -> None:
    move_inside_millisecond(clock, offset_us)
    await driver.push(job("a"), delay)

    clock.advance(delay - MICROSECOND)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    clock.advance(MICROSECOND)
    assert (await pop_by_next_millisecond(driver, clock)).id == "a"


@pytest.mark.parametrize(("offset_us", "delay"), SUB_MILLISECOND_CASES)
async def test_retry_backoff_is_never_short_by_a_microsecond(
    driver: Driver, clock: FakeClock, offset_us: int, delay: timedelta
) -> None:
    await driver.push(job("a", max_attempts=2), timedelta(0))
    popped = await driver.pop()
    popped.backoff = delay
    move_inside_millisecond(clock, offset_us)

    assert await driver.retry(popped)
    clock.advance(delay - MICROSECOND)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    clock.advance(MICROSECOND)
    assert (await pop_by_next_millisecond(driver, clock)).id == "a"


@pytest.mark.parametrize("offset_us", [1, 500, 999])
async def test_zero_delay_is_due_at_once_inside_a_millisecond(
    driver: Driver, clock: FakeClock, offset_us: int
) -> None:
    move_inside_millisecond(clock, offset_us)

    await driver.push(job("a"), timedelta(0))

    assert (await driver.pop()).id == "a"


async def test_no_job_is_popped_before_its_due_instant_on_the_store_clock(
    store_timed: StoreTimed,
) -> None:
    driver, now_us = store_timed
    early: list[tuple[str, int]] = []

    for number in range(WALL_CLOCK_JOBS):
        dispatched_us = await now_us()  # the push starts after this: its t is no earlier
        await driver.push(job(f"j{number}"), MILLISECOND)
        popped = await driver.pop()
        popped_us = await now_us()  # the pop decided before this
        await driver.ack(popped)
        if popped_us < dispatched_us + 1_000:
            early.append((popped.id, dispatched_us + 1_000 - popped_us))

    assert early == [], f"{len(early)} of {WALL_CLOCK_JOBS} popped early (id, microseconds)"


def move_inside_millisecond(clock: FakeClock, offset_us: int) -> None:
    """Advance `clock` to the next instant that lies `offset_us` past a whole millisecond."""
    clock.advance(((offset_us - clock.now_us()) % 1_000 or 1_000) * MICROSECOND)


async def pop_by_next_millisecond(driver: Driver, clock: FakeClock) -> PersistedJob:
    """Pop the job due now, at the latest by the next whole millisecond of `clock`.

    A store comparing microseconds hands it out at once; one that keeps whole milliseconds
    rounds due instants up, so it hands it out at the next whole millisecond. Raises
    QueueEmpty when neither does.
    """
    try:
        return await driver.pop()
    except QueueEmpty:
        if clock.now_us() % 1_000 == 0:
            raise  # already on a whole millisecond: no store may be later than this
    move_inside_millisecond(clock, 0)
    return await driver.pop()
