"""Results end to end on every driver: `Queue(keep_results=)`, `adjust(keep_result=)` and
`await queue.result()`, with the errors it raises and the pruning workers do."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import corequeue as cq
from corequeue.drivers.base import Channel, Driver, InspectDriver, QueueInfo
from tests.integration.conftest import consuming, eventually

KEEP = timedelta(minutes=5)


@dataclass
class Sum:
    a: int
    b: int


@dataclass
class Total:
    value: int
    label: str


async def test_result_returns_what_the_listener_returned(driver: Driver) -> None:
    queue = cq.Queue(driver)

    @queue.listener(Sum)
    async def add(job: cq.ReceivedJob) -> int:
        return int(job.data.a + job.data.b)

    job_id = await queue.dispatch(cq.adjust(Sum(2, 3), keep_result=KEEP))
    async with consuming(queue):
        result = await queue.result(job_id, timeout=10)

    assert result == 5
    assert (await queue.info()).completed == 1


async def test_queue_keep_results_applies_to_jobs_that_do_not_say(driver: Driver) -> None:
    queue = cq.Queue(driver, keep_results=KEEP)

    @queue.listener(Sum)
    def add(job: cq.ReceivedJob) -> Total:  # a plain def runs in a thread; its value is kept
        return Total(job.data.a + job.data.b, "sum")

    job_id = await queue.dispatch(Sum(1, 1))
    async with consuming(queue):
        result = await queue.result(job_id, timeout=timedelta(seconds=10), type=Total)

    assert result == Total(2, "sum")


async def test_several_listeners_give_a_list_in_subscription_order(driver: Driver) -> None:
    queue = cq.Queue(driver, keep_results=KEEP)

    @queue.listener(Sum)
    async def first(job: cq.ReceivedJob) -> str:
        return "first"

    @queue.listener(Sum)
    async def second(job: cq.ReceivedJob) -> None:
        return None

    job_id = await queue.dispatch(Sum(0, 0))
    async with consuming(queue):
        result = await queue.result(job_id, timeout=10)

    assert result == ["first", None]


async def test_a_job_without_keep_result_leaves_nothing_to_read(driver: Driver) -> None:
    queue = cq.Queue(driver)
    done = asyncio.Event()

    @queue.listener(Sum)
    async def add(job: cq.ReceivedJob) -> int:
        done.set()
        return 1

    job_id = await queue.dispatch(Sum(0, 0))
    async with consuming(queue):
        await asyncio.wait_for(done.wait(), 10)
        await eventually(lambda: _is_empty(queue))

    with pytest.raises(cq.JobNotFound):
        await queue.result(job_id, timeout=0)


async def test_a_failed_job_raises_job_failed_with_its_last_error(driver: Driver) -> None:
    queue = cq.Queue(driver, keep_results=KEEP)

    @queue.listener(Sum)
    async def add(job: cq.ReceivedJob) -> int:
        raise ArithmeticError("no sums today")

    job_id = await queue.dispatch(Sum(1, 2))
    async with consuming(queue):
        with pytest.raises(cq.JobFailed) as failed:
            await queue.result(job_id, timeout=10)

    assert failed.value.last_error == "ArithmeticError: no sums today"
    assert failed.value.channel == "failed"


async def test_a_pending_job_raises_timeout_error(driver: Driver) -> None:
    queue = cq.Queue(driver, keep_results=KEEP)
    job_id = await queue.dispatch(cq.adjust(Sum(1, 2), defer=timedelta(minutes=1)))

    with pytest.raises(TimeoutError, match="still delayed"):
        await queue.result(job_id, timeout=0.05)


async def test_an_unknown_id_raises_job_not_found(driver: Driver) -> None:
    queue = cq.Queue(driver)

    with pytest.raises(cq.JobNotFound, match="nobody"):
        await queue.result("nobody")


async def test_a_result_the_codec_cannot_encode_fails_the_job_without_retry(
    driver: Driver,
) -> None:
    queue = cq.Queue(driver, keep_results=KEEP)
    runs = 0

    @queue.listener(Sum)
    async def add(job: cq.ReceivedJob) -> Any:
        nonlocal runs
        runs += 1
        return object()

    job_id = await queue.dispatch(cq.adjust(Sum(1, 2), max_attempts=3))
    async with consuming(queue):
        with pytest.raises(cq.JobFailed, match="EncodeError: the result cannot be encoded"):
            await queue.result(job_id, timeout=10)

    assert runs == 1


async def test_a_waiter_wakes_when_the_job_finishes(driver: Driver) -> None:
    queue = cq.Queue(driver, keep_results=KEEP)
    release = asyncio.Event()

    @queue.listener(Sum)
    async def add(job: cq.ReceivedJob) -> int:
        await release.wait()
        return 7

    job_id = await queue.dispatch(Sum(3, 4))
    async with consuming(queue):
        waiting = asyncio.create_task(queue.result(job_id, timeout=10))
        await eventually(lambda: _is_running(queue))
        assert not waiting.done()
        release.set()
        assert await waiting == 7


async def test_the_result_is_shown_by_inspection(driver: Driver) -> None:
    if not isinstance(driver, InspectDriver):
        pytest.skip("no inspection")
    queue = cq.Queue(driver, keep_results=KEEP)

    @queue.listener(Sum)
    async def add(job: cq.ReceivedJob) -> dict[str, int]:
        return {"sum": job.data.a + job.data.b}

    job_id = await queue.dispatch(Sum(1, 2))
    async with consuming(queue):
        await queue.result(job_id, timeout=10)

    view = await driver.get_job(job_id)
    assert view is not None
    assert view.channel is Channel.COMPLETED
    assert view.job.result == b'{"sum":3}'


async def test_a_negative_timeout_is_refused(driver: Driver) -> None:
    queue = cq.Queue(driver)

    with pytest.raises(cq.InvalidOption, match="timeout"):
        await queue.result("a", timeout=-1)


@pytest.mark.parametrize("option", ["keep_results", "failed_retention"])
def test_retention_options_must_be_timedeltas_of_at_least_zero(option: str) -> None:
    negative: dict[str, Any] = {option: timedelta(seconds=-1)}
    number: dict[str, Any] = {option: 5}
    with pytest.raises(cq.InvalidOption, match=option):
        cq.Queue(cq.InProcessDriver(), **negative)
    with pytest.raises(cq.InvalidOption, match=option):
        cq.Queue(cq.InProcessDriver(), **number)


async def test_a_starting_worker_prunes_failed_jobs_past_the_retention(driver: Driver) -> None:
    queue = cq.Queue(driver, failed_retention=timedelta(0))

    @queue.listener(Sum)
    async def add(job: cq.ReceivedJob) -> int:
        raise ValueError("bad")

    job_id = await queue.dispatch(Sum(1, 2))
    async with consuming(queue):
        with pytest.raises(cq.JobFailed):
            await queue.result(job_id, timeout=10)
    async with consuming(queue):  # prunes a round as it starts, then every third of a lease
        await eventually(lambda: _is_empty(queue))


async def _is_empty(queue: cq.Queue) -> bool:
    return await queue.info() == QueueInfo()


async def _is_running(queue: cq.Queue) -> bool:
    return (await queue.info()).reserved == 1
