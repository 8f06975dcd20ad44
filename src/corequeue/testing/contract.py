"""The Driver contract as a pytest suite: run it against a driver of your own.

A driver is done when this suite passes for it unchanged. Every corequeue driver runs it too.

Usage: define two fixtures in your `conftest.py`, a `clock` and a `driver` that reads its time
from that clock and starts on an empty store, with a short pop timeout (every empty pop waits
that long):

    import pytest
    from corequeue.testing import FakeClock

    @pytest.fixture
    def clock() -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def driver(clock: FakeClock) -> AsyncIterator[MyDriver]:
        driver = MyDriver(pop_timeout=timedelta(milliseconds=100), clock=clock)
        yield driver
        await driver.close()

then write one test module:

    from corequeue.testing.contract import *  # noqa: F403

The fencing and header tests (`corequeue.testing.contract_fencing`, `contract_headers`) come
with it. For the inspection part
(InspectDriver, what the dashboard uses), import `corequeue.testing.contract_inspect` the same
way; the other `corequeue.testing.contract_*` modules say what more they need.

The suite needs pytest and pytest-asyncio (development dependencies, not dependencies of
corequeue). Its tests are `async def`: run them with `asyncio_mode = "auto"`; in strict mode,
declare `driver` with `@pytest_asyncio.fixture` and add `pytestmark = pytest.mark.asyncio` to
that module (keep it to the import: the mark would reach plain tests too). Time comes from the
FakeClock; the only real waiting is the driver's pop timeout before QueueEmpty.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from corequeue.drivers.base import LEASE_EXPIRED, Channel, Driver, QueueInfo
from corequeue.errors import InvalidOption, QueueEmpty
from corequeue.job import PersistedJob
from corequeue.testing import FakeClock
from corequeue.testing.contract_fencing import *  # noqa: F403 (its tests are part of the suite)
from corequeue.testing.contract_headers import *  # noqa: F403 (its tests are part of the suite)
from corequeue.testing.jobs import persisted, pop_all, with_every_field

MINUTE = timedelta(minutes=1)


# --- push and pop -------------------------------------------------------------------------


async def test_pop_returns_the_pushed_envelope_unchanged(driver: Driver) -> None:
    job = with_every_field()

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


async def test_push_refuses_an_option_it_does_not_know(driver: Driver) -> None:
    with pytest.raises(InvalidOption):
        await driver.push(persisted("a"), timedelta(0), no_such_option=True)

    assert await driver.info() == QueueInfo()


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

    assert await driver.ack(job) is True

    assert await driver.info() == QueueInfo()
    with pytest.raises(QueueEmpty):
        await driver.pop()


async def test_fail_parks_the_job_with_its_error(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    job = await driver.pop()
    job.last_error = "ValueError: bad address"

    assert await driver.fail(job) is True

    assert await driver.info() == QueueInfo(failed=1)
    assert await driver.reload(Channel.FAILED) == 1
    assert (await driver.pop()).last_error == "ValueError: bad address"


async def test_retry_delays_the_job_by_its_backoff_and_keeps_its_state(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("a", max_attempts=3), timedelta(0))
    job = await driver.pop()
    job.attempts, job.backoff, job.last_error = 2, timedelta(seconds=5), "try again"

    assert await driver.retry(job) is True

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


async def test_cancel_of_unknown_job_returns_false_and_of_a_reserved_one_only_asks(
    driver: Driver,
) -> None:
    await driver.push(persisted("a"), timedelta(0))
    await driver.pop()

    assert await driver.cancel("a") is True  # a request to its holder (see contract_running)
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


async def test_expired_lease_counts_as_an_attempt_and_the_job_is_retried(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("a", max_attempts=2), timedelta(0))
    await driver.pop()

    clock.advance(driver.lease)
    again = await driver.pop()

    assert (again.id, again.attempts, again.last_error) == ("a", 2, LEASE_EXPIRED)


async def test_expired_lease_without_attempts_left_parks_the_job_in_timeout(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("a", max_attempts=1), timedelta(0))
    await driver.pop()

    clock.advance(driver.lease)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    assert await driver.info() == QueueInfo(timeout=1)
    assert await driver.reload(Channel.TIMEOUT) == 1
    again = await driver.pop()
    assert (again.attempts, again.last_error) == (1, LEASE_EXPIRED)


async def test_renewed_lease_does_not_expire(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a", max_attempts=2), timedelta(0))
    job = await driver.pop()

    clock.advance(driver.lease * 2 / 3)
    assert await driver.renew(job) is True
    clock.advance(driver.lease * 2 / 3)

    with pytest.raises(QueueEmpty):
        await driver.pop()
    assert await driver.info() == QueueInfo(reserved=1)


async def test_release_returns_the_job_to_waiting_without_counting_an_attempt(
    driver: Driver,
) -> None:
    await driver.push(persisted("a", attempts=1, max_attempts=1), timedelta(0))
    job = await driver.pop()

    assert await driver.release(job) is True

    assert await driver.info() == QueueInfo(waiting=1)
    again = await driver.pop()
    assert (again.id, again.attempts) == ("a", 1)


# --- batches ------------------------------------------------------------------------------


async def test_push_many_enqueues_every_job(driver: Driver, clock: FakeClock) -> None:
    jobs = [(persisted(f"j{n}"), timedelta(seconds=n % 2)) for n in range(50)]

    await driver.push_many(jobs)

    assert await driver.info() == QueueInfo(waiting=25, delayed=25)
    clock.advance(timedelta(seconds=1))
    assert sorted(await pop_all(driver)) == sorted(job.id for job, _ in jobs)


async def test_pop_many_reserves_due_jobs_oldest_first(driver: Driver) -> None:
    for n in range(5):
        await driver.push(persisted(f"j{n}"), timedelta(0))
    await driver.push(persisted("later"), MINUTE)

    popped = await driver.pop_many(3)
    assert 1 <= len(popped) <= 3
    for _ in range(4):  # "up to" the limit: a driver may hand out fewer per call
        if len(popped) < 5:
            popped += await driver.pop_many(10)

    assert [job.id for job in popped] == ["j0", "j1", "j2", "j3", "j4"]
    assert all(job.token is not None for job in popped)
    assert await driver.info() == QueueInfo(delayed=1, reserved=5)
    with pytest.raises(QueueEmpty):
        await driver.pop_many(10)


async def test_batches_of_thousands_move_every_job_once(driver: Driver, clock: FakeClock) -> None:
    # Larger than any store's internal slice (Redis scripts move 1,000 ids per command).
    jobs = [(persisted(f"j{n:04}"), timedelta(seconds=n % 2)) for n in range(2_500)]
    await driver.push_many(jobs)
    clock.advance(timedelta(seconds=1))

    popped: list[PersistedJob] = []
    for _ in range(100):
        if len(popped) == len(jobs):
            break
        popped += await driver.pop_many(2_500)
    assert sorted(job.id for job in popped) == sorted(job.id for job, _ in jobs)
    assert await driver.renew_many(popped) == []

    stale = await driver.ack_many([*popped, popped[0]])  # the same job twice: one ack takes it
    assert [job.id for job in stale] == [popped[0].id]
    assert await driver.info() == QueueInfo()


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
async def test_pop_many_refuses_a_limit_below_one(driver: Driver, limit: int) -> None:
    await driver.push(persisted("kept"), timedelta(0))

    with pytest.raises(InvalidOption, match="limit"):
        await driver.pop_many(limit)

    assert await driver.info() == QueueInfo(waiting=1)


async def test_push_many_stores_an_id_given_twice_once(driver: Driver) -> None:
    first, second = persisted("twice", max_attempts=3), persisted("twice", max_attempts=5)

    await driver.push_many([(first, timedelta(0)), (second, timedelta(0))])

    assert await driver.info() == QueueInfo(waiting=1)
    job = await driver.pop()
    assert (job.id, job.max_attempts) == ("twice", 3)
    with pytest.raises(QueueEmpty):
        await driver.pop()


async def test_ack_many_removes_reserved_jobs_and_returns_the_others(driver: Driver) -> None:
    for job_id in ("a", "b", "c"):
        await driver.push(persisted(job_id), timedelta(0))
    first, second = await driver.pop(), await driver.pop()
    waiting = persisted("c")

    stale = await driver.ack_many([first, second, waiting])

    assert [job.id for job in stale] == ["c"]
    assert await driver.ack_many([]) == []
    assert await driver.info() == QueueInfo(waiting=1)
    assert await pop_all(driver) == ["c"]


async def test_renew_many_extends_every_lease(driver: Driver, clock: FakeClock) -> None:
    for job_id in ("a", "b"):
        await driver.push(persisted(job_id, max_attempts=2), timedelta(0))
    jobs = [await driver.pop(), await driver.pop()]

    clock.advance(driver.lease * 2 / 3)
    assert await driver.renew_many(jobs) == []
    assert await driver.renew_many([]) == []
    clock.advance(driver.lease * 2 / 3)

    with pytest.raises(QueueEmpty):
        await driver.pop()
    assert await driver.info() == QueueInfo(reserved=2)


# --- durability ---------------------------------------------------------------------------


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
            number = int(job.id.removeprefix("job-"))
            if number % 3 == 0 and job.attempts < job.max_attempts:
                job.attempts += 1
                job.backoff = timedelta(seconds=1)
                assert await driver.retry(job) is True
            elif number % 5 == 0 and job.id not in done:
                done.add(job.id)
                assert await driver.fail(job) is True
            else:
                done.add(job.id)
                assert await driver.ack(job) is True
        await driver.reload(Channel.FAILED)

    assert done == ids
    assert await driver.info() == QueueInfo()


__all__ = sorted(name for name in dict(globals()) if name.startswith("test_"))
"""Every test of the suite (this module's and the fencing tests), for `import *`."""
