"""Progress and cancellation of running jobs through the consumer (in-process store, short
lease so renewals come every 100 ms)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

import corequeue as cq
from corequeue.drivers.base import Channel
from corequeue.job import Progress
from tests.integration.conftest import consuming, eventually

LEASE = timedelta(milliseconds=300)


async def test_progress_set_in_a_listener_shows_in_inspection() -> None:
    driver = cq.InProcessDriver(lease=LEASE)
    queue = cq.Queue(driver)
    release = asyncio.Event()

    @queue.listener(str)
    async def work(job: cq.ReceivedJob) -> None:
        await job.set_progress(0.4, "step 2 of 5")
        await release.wait()

    job_id = await queue.dispatch("x")
    async with consuming(queue):

        async def shows_progress() -> bool:
            view = await driver.get_job(job_id)
            return view is not None and view.job.progress == Progress(0.4, "step 2 of 5")

        await eventually(shows_progress)
        release.set()


async def test_set_progress_refuses_a_fraction_out_of_range() -> None:
    driver = cq.InProcessDriver(lease=LEASE)
    queue = cq.Queue(driver, keep_results=timedelta(minutes=1))

    @queue.listener(str)
    async def work(job: cq.ReceivedJob) -> None:
        await job.set_progress(1.5)

    job_id = await queue.dispatch("x")
    async with consuming(queue):
        with pytest.raises(cq.JobFailed, match="fraction must be from 0 to 1"):
            await queue.result(job_id, timeout=10)


async def test_cancelling_a_plain_def_listener_fails_the_job_and_ignores_its_outcome() -> None:
    driver = cq.InProcessDriver(lease=LEASE)
    queue = cq.Queue(driver, keep_results=timedelta(minutes=1))
    started, release = threading.Event(), threading.Event()

    @queue.listener(str)
    def blocking(job: cq.ReceivedJob) -> str:
        started.set()
        release.wait(10)  # a thread nothing can stop: it runs to its end
        return "done"

    job_id = await queue.dispatch(cq.adjust("x", max_attempts=3))
    async with consuming(queue):
        await asyncio.to_thread(started.wait, 10)
        assert await queue.cancel(job_id) is True
        with pytest.raises(cq.JobFailed, match="cancelled"):
            await queue.result(job_id, timeout=10)
        release.set()

    view = await driver.get_job(job_id)
    assert view is not None
    assert (view.channel, view.job.attempts) == (Channel.FAILED, 1)


async def test_a_cancelled_job_that_prefetch_holds_is_failed_without_running() -> None:
    driver = cq.InProcessDriver(lease=LEASE)
    queue = cq.Queue(driver, parallelism=1, prefetch=1, keep_results=timedelta(minutes=1))
    release = asyncio.Event()
    ran: list[str] = []

    @queue.listener(str)
    async def work(job: cq.ReceivedJob) -> None:
        ran.append(job.data)
        await release.wait()

    await queue.dispatch("first")
    second = await queue.dispatch("second")
    async with consuming(queue):
        await eventually(lambda: _holds(driver, 2))
        assert await queue.cancel(second) is True
        with pytest.raises(cq.JobFailed, match="cancelled"):
            await queue.result(second, timeout=10)
        release.set()

    assert ran == ["first"]


async def _holds(driver: cq.InProcessDriver, count: int) -> bool:
    return (await driver.info()).reserved == count
