"""Concurrent dispatches share round trips; a lone dispatch goes alone, at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import corequeue as cq
from corequeue.drivers.base import QueueInfo
from corequeue.job import PersistedJob


class CountingDriver(cq.InProcessDriver):
    def __init__(self) -> None:
        super().__init__(timedelta(milliseconds=10))
        self.pushes = 0
        self.batches: list[int] = []

    async def push(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        self.pushes += 1
        await asyncio.sleep(0)  # a round trip: others dispatch meanwhile
        await super().push(job, delay, **options)

    async def push_many(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], **options: Any
    ) -> None:
        self.batches.append(len(jobs))
        await asyncio.sleep(0)
        await super().push_many(jobs, **options)


async def test_a_lone_dispatch_is_one_push() -> None:
    driver = CountingDriver()
    queue = cq.Queue(driver)

    await queue.dispatch(1)
    await queue.dispatch(2)

    assert (driver.pushes, driver.batches) == (2, [])


async def test_a_burst_becomes_a_few_batches_in_order() -> None:
    driver = CountingDriver()
    queue = cq.Queue(driver)

    ids = await asyncio.gather(*(queue.dispatch(n) for n in range(2500)))

    assert driver.pushes == 1
    assert driver.batches == [1000, 1000, 499]
    assert await queue.info() == QueueInfo(waiting=2500)
    popped = [await driver.pop() for _ in range(2500)]
    assert [job.id for job in popped] == ids


async def test_a_cancelled_dispatch_waiting_for_its_batch_is_not_stored() -> None:
    driver = CountingDriver()
    queue = cq.Queue(driver)
    first = asyncio.ensure_future(queue.dispatch(1))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(queue.dispatch(2))
    await asyncio.sleep(0)

    second.cancel()
    await first

    assert await queue.info() == QueueInfo(waiting=1)


class FailingOnceDriver(CountingDriver):
    """Refuses the first batch it is given, then stores the rest."""

    async def push_many(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], **options: Any
    ) -> None:
        if not self.batches:
            self.batches.append(len(jobs))
            await asyncio.sleep(0)
            raise cq.StoreUnavailable("test store", "down for one batch")
        await super().push_many(jobs, **options)


async def test_a_store_error_reaches_every_dispatch_of_its_batch_and_no_other() -> None:
    driver = FailingOnceDriver()
    queue = cq.Queue(driver)

    outcomes = await asyncio.gather(
        *(queue.dispatch(n) for n in range(1501)), return_exceptions=True
    )

    failed = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
    assert failed == list(range(1, 1001))  # the lone first push went; the first batch did not
    assert all(isinstance(outcomes[n], cq.StoreUnavailable) for n in failed)
    stored = [await driver.pop() for _ in range(501)]
    assert [job.id for job in stored] == [outcomes[0], *outcomes[1001:]]
    assert await queue.info() == QueueInfo(reserved=501)


async def test_several_cancelled_dispatches_leave_the_rest_of_the_batch_in_order() -> None:
    driver = CountingDriver()
    queue = cq.Queue(driver)
    tasks = [asyncio.ensure_future(queue.dispatch(n)) for n in range(10)]
    await asyncio.sleep(0)

    for n in (2, 5, 6):
        tasks[n].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    kept = [tasks[n].result() for n in range(10) if n not in (2, 5, 6)]
    assert driver.batches == [6]
    assert [(await driver.pop()).id for _ in kept] == kept
    assert await queue.info() == QueueInfo(reserved=7)
