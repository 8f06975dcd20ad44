"""User code that raises outside a listener call never jams a worker, over every driver.

Payload classes that refuse their data, payloads too deep to decode, metrics observers and
gauges that raise, a side task that dies: in each case no job stays reserved by a live worker,
the worker keeps its capacity (or stops with `WorkerCrashed`, having released what it held).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

import corequeue as cq
from corequeue.attempt import Attempts
from corequeue.drivers.base import Channel, Driver, QueueInfo
from corequeue.metrics import Outcome
from corequeue.settlement import Settlement
from tests.integration.conftest import consuming, eventually


@dataclass
class Payment:
    amount: int

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"amount must be positive, got {self.amount}")


class Served:
    """An `int` listener recording what it served."""

    def __init__(self, queue: cq.Queue) -> None:
        self.values: list[int] = []
        queue.subscribe(cq.listen(int, self.serve))

    async def serve(self, job: cq.ReceivedJob) -> None:
        self.values.append(job.data)


async def last_errors(driver: Driver, channel: Channel) -> list[str]:
    assert isinstance(driver, cq.InspectDriver)
    return [view.job.last_error or "" for view in await driver.list_jobs(channel)]


async def test_payload_class_that_refuses_its_data_fails_the_job_and_frees_the_slot(
    driver: Driver,
) -> None:
    queue = cq.Queue(driver, parallelism=1)
    paid: list[int] = []

    @queue.listener(Payment)
    async def pay(job: cq.ReceivedJob) -> None:
        paid.append(job.data.amount)

    served = Served(queue)
    for amount in (1, 2, 3):
        await queue.dispatch(cq.adjust(Payment(amount), max_attempts=3))
    # Written around the class's own check, as an older release (or another producer) might.
    bad = cq.PersistedJob(
        id="bad", type=cq.job_from(Payment(1)).type, value=b'{"amount": -5}', max_attempts=3
    )
    for job in (bad, replace(bad, id="bad-2")):
        await driver.push(job, timedelta(0))
    await queue.dispatch(42)

    async with consuming(queue) as worker:
        await eventually(lambda: _settled(queue, QueueInfo(failed=2)))
        assert not worker.done()

    assert served.values == [42]
    assert sorted(paid) == [1, 2, 3]
    errors = await last_errors(driver, Channel.FAILED)
    assert len(errors) == 2
    assert all(e.startswith("DecodeError:") and "amount must be positive" in e for e in errors)


async def test_payload_too_deep_to_decode_fails_the_job(driver: Driver) -> None:
    queue = cq.Queue(driver, parallelism=1)
    queue.subscribe(cq.listen(list, _never_called))
    served = Served(queue)
    deep = cq.PersistedJob(id="deep", type="builtins.list", value=b"[" * 1200 + b"]" * 1200)
    await driver.push(deep, timedelta(0))
    await queue.dispatch(7)

    async with consuming(queue):
        await eventually(lambda: _settled(queue, QueueInfo(failed=1)))

    assert served.values == [7]
    (error,) = await last_errors(driver, Channel.FAILED)
    assert error.startswith("DecodeError:")


class BrokenMetrics:
    """A metrics observer whose exporter is down: every call raises."""

    def __init__(self) -> None:
        self.calls = 0

    def observe(self, queue: str, job_type: str, outcome: Outcome, duration: float) -> None:
        self.calls += 1
        raise ConnectionError("exporter down")


async def test_metrics_observer_that_raises_never_stops_acks(driver: Driver) -> None:
    metrics = BrokenMetrics()
    queue = cq.Queue(driver, parallelism=2, metrics=metrics)
    served = Served(queue)
    await queue.dispatch_many(range(10))

    async with consuming(queue) as worker:
        await eventually(lambda: _settled(queue, QueueInfo()))
        assert not worker.done()

    assert sorted(served.values) == list(range(10))
    assert metrics.calls == 10


class BrokenGauge:
    def __init__(self) -> None:
        self.calls = 0

    def set(self, value: float, *, queue: str, channel: str) -> None:
        self.calls += 1
        raise RuntimeError("gauge backend down")


async def test_gauge_that_raises_never_stops_the_worker(driver: Driver) -> None:
    gauge = BrokenGauge()
    queue = cq.Queue(driver, gauge=gauge, gauge_interval=timedelta(milliseconds=10))
    served = Served(queue)

    async with consuming(queue) as worker:
        await eventually(lambda: _true(gauge.calls >= 10))
        await queue.dispatch(5)
        await eventually(lambda: _settled(queue, QueueInfo()))
        assert not worker.done()

    assert served.values == [5]


async def test_event_listener_that_raises_still_fails_the_job(driver: Driver) -> None:
    events = cq.SyncDispatcher()
    events.subscribe(cq.listen(cq.BeforeAbortPayload, _raise_runtime_error))
    queue = cq.Queue(driver, event_dispatcher=events)
    queue.subscribe(cq.listen(int, _raise_runtime_error))
    await queue.dispatch(1)

    async with consuming(queue) as worker:
        await eventually(lambda: _settled(queue, QueueInfo(failed=1)))
        assert not worker.done()


async def test_attempt_crashing_outside_the_listener_fails_the_job(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: Attempts, job: cq.PersistedJob) -> Any:
        raise RuntimeError("bug outside the listener")

    monkeypatch.setattr(Attempts, "decode", crash)
    queue = cq.Queue(driver, parallelism=1)
    Served(queue)
    await queue.dispatch_many([1, 2])

    async with consuming(queue) as worker:
        await eventually(lambda: _settled(queue, QueueInfo(failed=2)))
        assert not worker.done()

    errors = await last_errors(driver, Channel.FAILED)
    assert errors == ["RuntimeError: bug outside the listener"] * 2


async def test_side_task_that_dies_stops_consume_with_worker_crashed(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = asyncio.Event()

    async def dying_renewals(self: Settlement) -> None:
        await started.wait()
        raise RuntimeError("renewal task bug")

    monkeypatch.setattr(Settlement, "renew_loop", dying_renewals)
    queue = cq.Queue(driver, shutdown_grace=timedelta(0))
    release = asyncio.Event()

    async def slow(job: cq.ReceivedJob) -> None:
        started.set()
        await release.wait()

    queue.subscribe(cq.listen(int, slow))
    await queue.dispatch(1)

    with pytest.raises(cq.WorkerCrashed, match="renewal task bug") as caught:
        await asyncio.wait_for(queue.consume(handle_signals=False), 10)

    assert isinstance(caught.value.__cause__, RuntimeError)
    assert await queue.info() == QueueInfo(waiting=1)  # released uncounted, not stranded
    assert isinstance(driver, cq.InspectDriver)
    (view,) = await driver.list_jobs(Channel.WAITING)
    assert view.job.attempts == 1


async def _never_called(job: cq.ReceivedJob) -> None:
    raise AssertionError("a payload its class refuses must not reach the listener")


async def _raise_runtime_error(job: cq.ReceivedJob) -> None:
    raise RuntimeError("listener failed")


async def _settled(queue: cq.Queue, expected: QueueInfo) -> bool:
    return await queue.info() == expected


async def _true(value: bool) -> bool:
    return value


async def test_event_listener_raising_cancelled_error_still_settles_the_job(
    driver: Driver,
) -> None:
    async def leak_cancellation(job: cq.ReceivedJob) -> None:
        raise asyncio.CancelledError("leaked by a library")

    events = cq.SyncDispatcher()
    events.subscribe(cq.listen(cq.BeforeAbortPayload, leak_cancellation))
    queue = cq.Queue(driver, event_dispatcher=events, parallelism=1)
    queue.subscribe(cq.listen(int, _raise_runtime_error))
    greeted: list[str] = []
    queue.subscribe(cq.listen(str, lambda job: greeted.append(job.data)))
    await queue.dispatch(1)
    await queue.dispatch("after")

    async with consuming(queue) as worker:
        await eventually(lambda: _settled(queue, QueueInfo(failed=1)))
        await eventually(lambda: _true(greeted == ["after"]))  # the slot is free again
        assert not worker.done()
