"""Concurrent dispatch, pop and settle from many tasks and threads, on every driver.

Outcomes only (every job stored once, run, settled; nothing lost or doubled): speed lives in
the benchmark.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

import corequeue as cq
from corequeue.drivers.base import Driver, QueueInfo
from tests.integration.conftest import consuming, eventually

BURST = 10_000


async def test_a_burst_of_concurrent_dispatches_from_one_loop_all_succeed(driver: Driver) -> None:
    queue = cq.Queue(driver)

    ids = await asyncio.gather(*(queue.dispatch(n) for n in range(BURST)))

    assert len(set(ids)) == BURST
    assert await queue.info() == QueueInfo(waiting=BURST)


async def test_concurrent_dispatches_keep_their_order(driver: Driver) -> None:
    queue = cq.Queue(driver, parallelism=1)
    seen: list[int] = []
    queue.subscribe(cq.listen(int, lambda job: seen.append(job.data)))

    await asyncio.gather(*(queue.dispatch(n) for n in range(300)))
    async with consuming(queue):
        await eventually(lambda: _true(len(seen) == 300))

    assert seen == list(range(300))


async def test_a_failing_store_fails_every_dispatch_of_the_batch(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = cq.Queue(driver)

    async def store_down(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        raise cq.StoreUnavailable("test store", "down")

    monkeypatch.setattr(driver, "push", store_down)
    monkeypatch.setattr(driver, "push_many", store_down)
    results = await asyncio.gather(*(queue.dispatch(n) for n in range(50)), return_exceptions=True)

    assert all(isinstance(result, cq.StoreUnavailable) for result in results), results
    monkeypatch.undo()
    assert await queue.info() == QueueInfo()


async def test_dispatch_from_threads_and_tasks_while_two_consumers_settle(driver: Driver) -> None:
    queue = cq.Queue(driver, parallelism=16, prefetch=8)
    runs: Counter[int] = Counter()

    @queue.listener(int)
    async def work(job: cq.ReceivedJob) -> None:
        runs[job.data] += 1
        if job.data % 7 == 0 and job.attempt == 1:
            raise RuntimeError("retried once")

    threads = [
        threading.Thread(target=_dispatch_from_thread, args=(queue, start, 200))
        for start in range(0, 800, 200)
    ]
    async with consuming(queue), consuming(queue):
        for thread in threads:
            thread.start()
        await asyncio.gather(
            *(queue.dispatch(cq.adjust(n, max_attempts=2)) for n in range(800, 1600))
        )
        await asyncio.gather(*(asyncio.to_thread(thread.join) for thread in threads))
        await eventually(lambda: _settled(queue), within=60)

    assert sorted(runs) == list(range(1600))
    assert all(runs[n] == (2 if n % 7 == 0 else 1) for n in range(1600))


def _dispatch_from_thread(queue: cq.Queue, start: int, count: int) -> None:
    for n in range(start, start + count):
        queue.dispatch_sync(cq.adjust(n, max_attempts=2, defer=timedelta(0)))


async def _settled(queue: cq.Queue) -> bool:
    return await queue.info() == QueueInfo()


async def _true(value: bool) -> bool:
    return value
