"""The consumer's batching over every driver: prefetch, batched acks, one lease-renewal task."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest

import corequeue as cq
from corequeue.drivers.base import Driver, QueueInfo
from tests.integration.conftest import consuming, eventually


async def test_prefetched_jobs_wait_leased_and_go_back_to_waiting_at_shutdown(
    driver: Driver,
) -> None:
    queue = cq.Queue(driver, parallelism=1, prefetch=2, shutdown_grace=timedelta(milliseconds=50))
    started: list[int] = []

    @queue.listener(int)
    async def stuck(job: cq.ReceivedJob) -> None:
        started.append(job.data)
        await asyncio.Event().wait()

    await queue.dispatch_many(range(5))
    async with consuming(queue):
        await eventually(lambda: reserved(queue, 3))
        assert await queue.info() == QueueInfo(waiting=2, reserved=3)

    assert started == [0]
    assert await queue.info() == QueueInfo(waiting=5)
    attempts = [(await driver.pop()).attempts for _ in range(5)]
    assert attempts == [1] * 5


async def test_many_short_jobs_are_each_run_once_and_all_acked(driver: Driver) -> None:
    queue = cq.Queue(driver, parallelism=20, prefetch=20)
    seen: list[int] = []

    @queue.listener(int)
    async def record(job: cq.ReceivedJob) -> None:
        seen.append(job.data)

    await queue.dispatch_many(range(500))
    async with consuming(queue):
        await eventually(lambda: done(queue, seen, 500))

    assert sorted(seen) == list(range(500))


async def test_a_finished_job_stays_reserved_until_its_ack(driver: Driver) -> None:
    queue = cq.Queue(driver)
    during: list[QueueInfo] = []

    @queue.listener(int)
    async def look(job: cq.ReceivedJob) -> None:
        during.append(await queue.info())

    await queue.dispatch(1)
    async with consuming(queue):
        await eventually(lambda: done(queue, during, 1))

    assert during == [QueueInfo(reserved=1)]


@pytest.mark.parametrize("prefetch", [-1, True, 1.5])
def test_prefetch_must_be_a_whole_number_of_at_least_zero(prefetch: object) -> None:
    with pytest.raises(cq.InvalidOption, match="prefetch"):
        cq.Queue(cq.InProcessDriver(), prefetch=prefetch)  # type: ignore[arg-type]


async def reserved(queue: cq.Queue, count: int) -> bool:
    return (await queue.info()).reserved == count


async def done(queue: cq.Queue, seen: Sequence[object], count: int) -> bool:
    return len(seen) >= count and await queue.info() == QueueInfo()
