"""The Driver contract for job headers: text metadata a store keeps with the envelope.

Part of `corequeue.testing.contract` (imported by it). Middleware sets headers at dispatch
(a trace context, a request id); a worker reads them on every attempt, so a driver hands them
back unchanged after every move a job makes: push, push_many, push_sync, retry, fail and
reload, lease recovery and release.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from corequeue.drivers.base import Channel, Driver
from corequeue.job import PersistedJob
from corequeue.testing import FakeClock
from corequeue.testing.jobs import EVERY_HEADER, persisted


def _with_headers(job_id: str, **fields: object) -> PersistedJob:
    return persisted(job_id, headers=dict(EVERY_HEADER), **fields)


async def test_headers_come_back_from_pop_as_pushed(driver: Driver) -> None:
    await driver.push(_with_headers("a"), timedelta(0))

    popped = await driver.pop()

    assert popped.headers == EVERY_HEADER


async def test_a_job_without_headers_pops_with_none(driver: Driver) -> None:
    await driver.push(persisted("a"), timedelta(0))

    assert (await driver.pop()).headers == {}


async def test_push_many_keeps_each_jobs_own_headers(driver: Driver) -> None:
    jobs = [
        (persisted("a", headers={"n": "1"}), timedelta(0)),
        (persisted("b"), timedelta(0)),
        (persisted("c", headers={"n": "3"}), timedelta(0)),
    ]

    await driver.push_many(jobs)
    popped = {job.id: job.headers for job in [await driver.pop() for _ in jobs]}

    assert popped == {"a": {"n": "1"}, "b": {}, "c": {"n": "3"}}


async def test_push_sync_keeps_headers(driver: Driver) -> None:
    await asyncio.to_thread(driver.push_sync, _with_headers("a"), timedelta(0))

    assert (await driver.pop()).headers == EVERY_HEADER


async def test_headers_survive_a_retry(driver: Driver, clock: FakeClock) -> None:
    await driver.push(_with_headers("a", max_attempts=3), timedelta(0))
    job = await driver.pop()

    job.attempts, job.last_error, job.backoff = 2, "boom", timedelta(seconds=1)
    assert await driver.retry(job)
    clock.advance(timedelta(seconds=1))
    again = await driver.pop()

    assert (again.attempts, again.headers) == (2, EVERY_HEADER)


async def test_headers_survive_fail_and_reload(driver: Driver) -> None:
    await driver.push(_with_headers("a"), timedelta(0))
    job = await driver.pop()

    assert await driver.fail(job)
    assert await driver.reload(Channel.FAILED) == 1

    assert (await driver.pop()).headers == EVERY_HEADER


async def test_headers_survive_lease_recovery_and_release(driver: Driver, clock: FakeClock) -> None:
    await driver.push(_with_headers("a", max_attempts=3), timedelta(0))
    await driver.pop()

    clock.advance(driver.lease + timedelta(milliseconds=1))
    recovered = await driver.pop()
    assert await driver.release(recovered)
    released = await driver.pop()

    assert (recovered.headers, released.headers) == (EVERY_HEADER, EVERY_HEADER)


async def test_a_job_pushed_again_over_a_failed_one_takes_the_new_headers(
    driver: Driver,
) -> None:
    await driver.push(_with_headers("a"), timedelta(0))
    assert await driver.fail(await driver.pop())

    await driver.push(persisted("a", headers={"new": "yes"}), timedelta(0))

    assert (await driver.pop()).headers == {"new": "yes"}


async def test_a_pending_job_pushed_again_keeps_its_headers(driver: Driver) -> None:
    await driver.push(_with_headers("a"), timedelta(0))

    await driver.push(persisted("a", headers={"new": "yes"}), timedelta(0))

    assert (await driver.pop()).headers == EVERY_HEADER
