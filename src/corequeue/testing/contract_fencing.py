"""The fencing part of the Driver contract: only the current holder of a job may settle it.

Each pop hands out a fresh reservation token; ack, fail, retry, release and renew (and the
batch forms) act only while the job is reserved under that token. A holder whose lease ran out,
whose job was popped again, or whose job id was dispatched again changes nothing.

Part of `corequeue.testing.contract` (import that module); see it for the fixtures it needs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from corequeue.drivers.base import (
    LEASE_EXPIRED,
    Channel,
    Driver,
    InspectDriver,
    JobView,
    QueueInfo,
    instant_of_ms,
)
from corequeue.errors import QueueEmpty
from corequeue.job import PersistedJob
from corequeue.testing import FakeClock
from corequeue.testing.jobs import persisted

MINUTE = timedelta(minutes=1)

SETTLES = ["ack", "ack_many", "fail", "retry", "release", "renew", "renew_many"]
"""Every way a holder acts on a reserved job, batch forms included."""

AFTER_SETTLE = {
    "ack": QueueInfo(),
    "ack_many": QueueInfo(),
    "fail": QueueInfo(failed=1),
    "retry": QueueInfo(delayed=1),
    "release": QueueInfo(waiting=1),
    "renew": QueueInfo(reserved=1),
    "renew_many": QueueInfo(reserved=1),
}
"""The counts after the current holder of the only job settles it so."""


async def settle(driver: Driver, how: str, job: PersistedJob) -> bool:
    """Act on `job` as a worker would (a retry counts an attempt); return whether it took."""
    match how:
        case "ack":
            return await driver.ack(job)
        case "ack_many":
            return not await driver.ack_many([job])
        case "fail":
            return await driver.fail(replace(job, last_error=f"failed by {job.token}"))
        case "retry":
            retried = replace(job, attempts=job.attempts + 1, backoff=MINUTE, last_error="again")
            return await driver.retry(retried)
        case "release":
            return await driver.release(job)
        case "renew":
            return await driver.renew(job)
        case "renew_many":
            return not await driver.renew_many([job])
    raise AssertionError(f"unknown way to settle: {how}")


async def stale_and_current(driver: Driver, clock: FakeClock) -> tuple[PersistedJob, PersistedJob]:
    """Return two copies of job "a": one whose lease ran out, and the one popped again after."""
    await driver.push(persisted("a", max_attempts=3), timedelta(0))
    stale = await driver.pop()
    clock.advance(driver.lease)
    current = await driver.pop()
    assert (current.id, current.attempts, current.last_error) == ("a", 2, LEASE_EXPIRED)
    return stale, current


# --- tokens -------------------------------------------------------------------------------


async def test_each_pop_hands_out_a_fresh_token(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a", max_attempts=3), timedelta(0))
    first = await driver.pop()
    await driver.release(first)
    second = await driver.pop()
    clock.advance(driver.lease)
    third = await driver.pop()

    tokens = [first.token, second.token, third.token]

    assert None not in tokens
    assert len(set(tokens)) == 3


async def test_a_job_without_its_token_never_settles(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    held = await driver.pop()
    assert held.token is not None
    strangers = [persisted("a"), replace(held, token=None), replace(held, token=held.token + "x")]

    settled = [await settle(driver, how, job) for job in strangers for how in SETTLES]

    assert not any(settled)
    assert await driver.info() == QueueInfo(reserved=1)
    assert await driver.ack(held) is True


# --- a holder whose lease ran out -----------------------------------------------------------


@pytest.mark.parametrize("how", SETTLES)
async def test_holder_whose_lease_ran_out_changes_nothing_and_the_new_holder_settles(
    driver: Driver, clock: FakeClock, how: str
) -> None:
    stale, current = await stale_and_current(driver, clock)
    clock.advance(driver.lease / 2)

    assert await settle(driver, how, stale) is False
    assert await driver.info() == QueueInfo(reserved=1)
    assert await settle(driver, how, current) is True
    assert await driver.info() == AFTER_SETTLE[how]


async def test_renew_by_a_holder_whose_lease_ran_out_leaves_the_new_lease_alone(
    driver: Driver, clock: FakeClock
) -> None:
    stale, _ = await stale_and_current(driver, clock)
    clock.advance(driver.lease / 2)

    assert await driver.renew(stale) is False
    assert await driver.renew_many([stale]) == [stale]
    clock.advance(driver.lease / 2)

    again = await driver.pop()
    assert (again.id, again.attempts) == ("a", 3)


async def test_holder_whose_job_timed_out_changes_nothing(driver: Driver, clock: FakeClock) -> None:
    await driver.push(persisted("a", max_attempts=1), timedelta(0))
    stale = await driver.pop()
    clock.advance(driver.lease)
    with pytest.raises(QueueEmpty):
        await driver.pop()

    settled = [await settle(driver, how, stale) for how in SETTLES]

    assert settled == [False] * len(SETTLES)
    assert await driver.info() == QueueInfo(timeout=1)


async def test_a_late_ack_leaves_the_job_dispatched_again_under_the_same_id(
    driver: Driver, clock: FakeClock
) -> None:
    await driver.push(persisted("report-42", value=b'{"v":1}', max_attempts=3), timedelta(0))
    worker_a = await driver.pop()
    clock.advance(driver.lease)
    worker_b = await driver.pop()
    assert (worker_b.id, worker_b.value) == ("report-42", b'{"v":1}')
    assert await driver.ack(worker_b) is True
    second = persisted("report-42", value=b'{"v":2}', max_attempts=3)
    await driver.push(second, timedelta(0))
    worker_c = await driver.pop()

    assert await driver.ack(worker_a) is False

    assert await driver.info() == QueueInfo(reserved=1)
    assert (worker_c.value, worker_c.attempts) == (b'{"v":2}', 1)
    worker_c.attempts, worker_c.backoff, worker_c.last_error = 2, MINUTE, "try again"
    assert await driver.retry(worker_c) is True
    assert await driver.info() == QueueInfo(delayed=1)
    if isinstance(driver, InspectDriver):  # a driver of your own may have no inspection
        due = instant_of_ms(clock.now_ms()) + MINUTE
        assert await driver.get_job("report-42") == JobView(worker_c, Channel.DELAYED, due)
    clock.advance(MINUTE)
    again = await driver.pop()
    assert (again.value, again.attempts, again.last_error) == (b'{"v":2}', 2, "try again")


# --- batches with stale members -------------------------------------------------------------


async def test_ack_many_acks_the_current_holders_and_returns_the_stale(
    driver: Driver, clock: FakeClock
) -> None:
    stale, current = await stale_and_current(driver, clock)
    await driver.push(persisted("b"), timedelta(0))
    fresh = await driver.pop()

    returned = await driver.ack_many([stale, fresh])

    assert [(job.id, job.token) for job in returned] == [("a", stale.token)]
    assert await driver.info() == QueueInfo(reserved=1)
    assert await driver.ack(current) is True


async def test_renew_many_reports_only_the_leases_lost(driver: Driver, clock: FakeClock) -> None:
    for job_id in ["a", "b", "c"]:
        await driver.push(persisted(job_id, max_attempts=3), timedelta(0))
    held = {job.id: job for job in [await driver.pop() for _ in range(3)]}
    clock.advance(driver.lease * 2 / 3)
    await driver.renew(held["c"])
    clock.advance(driver.lease * 2 / 3)
    taken_again = await driver.pop()  # "a" and "b" ran out: back in waiting, one popped again

    lost = await driver.renew_many([held["a"], held["b"], held["c"], persisted("c")])

    assert taken_again.id in {"a", "b"}
    assert sorted((job.id, job.token) for job in lost) == sorted(
        [("a", held["a"].token), ("b", held["b"].token), ("c", None)]
    )
    assert await driver.info() == QueueInfo(waiting=1, reserved=2)
    clock.advance(driver.lease * 2 / 3)
    await driver.pop()  # the one left waiting
    with pytest.raises(QueueEmpty):  # renew_many extended "c"'s lease: nothing ran out
        await driver.pop()
    assert await driver.info() == QueueInfo(reserved=3)


# --- a move out of reserved takes the token with it ------------------------------------------


@pytest.mark.parametrize("move", ["release", "retry", "fail"])
async def test_a_holder_cannot_settle_a_job_it_already_moved(
    driver: Driver, clock: FakeClock, move: str
) -> None:
    await driver.push(persisted("a", max_attempts=3), timedelta(0))
    held = await driver.pop()
    assert await settle(driver, move, held) is True

    settled = [await settle(driver, how, held) for how in SETTLES]

    assert settled == [False] * len(SETTLES)
    assert await driver.info() == AFTER_SETTLE[move]
    await driver.reload(Channel.FAILED)
    clock.advance(MINUTE)
    assert await driver.ack(await driver.pop()) is True


async def test_a_second_ack_of_the_same_copy_returns_false(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))
    held = await driver.pop()

    assert await driver.ack(held) is True
    assert await driver.ack(held) is False


__all__ = sorted(name for name in dict(globals()) if name.startswith("test_"))
"""Every test of this module, for `import *`."""
