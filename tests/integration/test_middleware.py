"""Middleware: headers set at dispatch reach the listeners; hooks run in order; a hook that
raises fails that dispatch or that attempt, and never jams the worker."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

import corequeue as cq
from corequeue.config import parse_config
from corequeue.drivers.base import Channel, Driver, QueueInfo
from corequeue.middleware import CallNext
from tests.integration.conftest import consuming, eventually


class Stamp:
    """Adds one header at dispatch and records the order of its hooks in `trail`."""

    def __init__(self, name: str, trail: list[str]) -> None:
        self.name = name
        self.trail = trail

    async def on_dispatch(self, job: cq.DispatchedJob, headers: dict[str, str]) -> None:
        self.trail.append(f"{self.name} dispatch, saw {sorted(headers)}")
        headers[self.name] = f"{job.type}@{job.queue}"

    async def around_process(self, job: cq.ReceivedJob, call_next: CallNext) -> Any:
        self.trail.append(f"{self.name} before")
        try:
            return await call_next()
        finally:
            self.trail.append(f"{self.name} after")


class Boom(Exception):
    """What the misbehaving middleware of these tests raise."""


class RaisesAtDispatch:
    def on_dispatch(self, job: cq.DispatchedJob, headers: dict[str, str]) -> None:
        raise Boom("no tracer")


class RaisesAroundProcess:
    """Raises before the listeners run, or after, as told."""

    def __init__(self, when: str, times: int = 1_000) -> None:
        self.when = when
        self.times = times

    async def around_process(self, job: cq.ReceivedJob, call_next: CallNext) -> Any:
        if self.when == "before" and self.times > 0:
            self.times -= 1
            raise Boom("before the listeners")
        result = await call_next()
        if self.when == "after" and self.times > 0:
            self.times -= 1
            raise Boom("after the listeners")
        return result


async def last_errors(driver: Driver, channel: Channel) -> list[str]:
    assert isinstance(driver, cq.InspectDriver)
    return [view.job.last_error or "" for view in await driver.list_jobs(channel)]


async def info_is(queue: cq.Queue, expected: QueueInfo) -> bool:
    return await queue.info() == expected


# --- every driver -------------------------------------------------------------------------


async def test_headers_from_dispatch_reach_the_listener_and_hooks_run_in_order(
    driver: Driver,
) -> None:
    trail: list[str] = []
    queue = cq.Queue(driver, name="mail", middleware=[Stamp("a", trail), Stamp("b", trail)])
    seen: list[Mapping[str, str]] = []
    done = asyncio.Event()

    @queue.listener(int)
    async def handle(job: cq.ReceivedJob) -> None:
        trail.append("listener")
        seen.append(job.headers)
        done.set()

    await queue.dispatch(7)
    async with consuming(queue):
        await asyncio.wait_for(done.wait(), 10)
        await eventually(lambda: info_is(queue, QueueInfo()))

    assert dict(seen[0]) == {"a": "builtins.int@mail", "b": "builtins.int@mail"}
    assert trail == [
        "a dispatch, saw []",
        "b dispatch, saw ['a']",
        "a before",
        "b before",
        "listener",
        "b after",
        "a after",
    ]


async def test_a_middleware_raising_around_the_listeners_fails_the_attempt_then_the_job(
    driver: Driver,
) -> None:
    queue = cq.Queue(driver, middleware=[RaisesAroundProcess("before")])
    ran: list[int] = []
    queue.subscribe(cq.listen(int, lambda job: ran.append(job.data)))

    await queue.dispatch(cq.adjust(1, max_attempts=2))
    async with consuming(queue) as worker:
        await eventually(lambda: info_is(queue, QueueInfo(failed=1)))
        assert not worker.done()

    assert ran == []
    [error] = await last_errors(driver, Channel.FAILED)
    assert error.startswith("MiddlewareError: middleware RaisesAroundProcess.around_process")
    assert "Boom: before the listeners" in error


# --- the in-process driver: the rules in detail -------------------------------------------


def in_process() -> cq.InProcessDriver:
    return cq.InProcessDriver(pop_interval=timedelta(milliseconds=50))


async def test_a_middleware_raising_at_dispatch_stores_nothing_and_names_itself() -> None:
    queue = cq.Queue(in_process(), middleware=[RaisesAtDispatch()])

    with pytest.raises(cq.MiddlewareError, match=r"RaisesAtDispatch\.on_dispatch") as caught:
        await queue.dispatch(1)
    with pytest.raises(cq.MiddlewareError):
        await queue.dispatch_many([1, 2])
    with pytest.raises(cq.MiddlewareError):
        await asyncio.to_thread(queue.dispatch_sync, 1)

    assert isinstance(caught.value.__cause__, Boom)
    assert await queue.info() == QueueInfo()


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"n": 1}, "header 'n' must have a str value"),
        ({"": "x"}, "header names must be str of 1 to 200"),
        ({"big": "x" * 9000}, "at most 8192"),
        ({f"h{n}": "" for n in range(65)}, "at most 64 headers"),
        ({"nul": "a\x00b"}, "NUL"),
    ],
)
async def test_headers_a_middleware_leaves_are_checked_at_dispatch(
    headers: dict[str, Any], why: str
) -> None:
    class Bad:
        def on_dispatch(self, job: cq.DispatchedJob, given: dict[str, Any]) -> None:
            given.update(headers)

    queue = cq.Queue(in_process(), middleware=[Bad()])

    with pytest.raises(cq.MiddlewareError, match="bad headers") as caught:
        await queue.dispatch(1)

    assert why in str(caught.value)
    assert await queue.info() == QueueInfo()


async def test_sync_dispatch_runs_async_hooks_and_stores_their_headers() -> None:
    queue = cq.Queue(in_process(), middleware=[Stamp("a", [])])

    await asyncio.to_thread(queue.dispatch_sync, 1)
    await queue.dispatch_many([2])

    jobs = [await queue.driver.pop(), await queue.driver.pop()]
    assert [job.headers for job in jobs] == [{"a": "builtins.int@default"}] * 2


async def test_a_middleware_raising_after_the_listeners_fails_the_attempt_and_retries() -> None:
    queue = cq.Queue(in_process(), middleware=[RaisesAroundProcess("after", times=1)])
    ran: list[int] = []
    queue.subscribe(cq.listen(int, lambda job: ran.append(job.attempt)))

    await queue.dispatch(cq.adjust(1, max_attempts=2, timeout=timedelta(seconds=5)))
    async with consuming(queue):
        await eventually(lambda: info_is(queue, QueueInfo()), within=15)

    assert ran == [1, 2]  # the first attempt failed after its listener ran: retried


async def test_what_a_listener_raises_passes_through_middleware_unchanged() -> None:
    queue = cq.Queue(in_process(), middleware=[Stamp("a", [])])

    def refuse(job: cq.ReceivedJob) -> None:
        raise ValueError("bad input")

    queue.subscribe(cq.listen(int, refuse))
    await queue.dispatch(1)
    async with consuming(queue):
        await eventually(lambda: info_is(queue, QueueInfo(failed=1)))

    assert await last_errors(queue.driver, Channel.FAILED) == ["ValueError: bad input"]


async def test_a_raising_middleware_leaves_the_worker_its_capacity() -> None:
    queue = cq.Queue(in_process(), parallelism=1, middleware=[RaisesAroundProcess("before", 3)])
    ran: list[int] = []
    done = asyncio.Event()

    @queue.listener(int)
    async def handle(job: cq.ReceivedJob) -> None:
        ran.append(job.data)
        done.set()

    for value in (1, 2, 3, 4):
        await queue.dispatch(value)
    async with consuming(queue):
        await asyncio.wait_for(done.wait(), 10)
        await eventually(lambda: info_is(queue, QueueInfo(failed=3)))

    assert ran == [4]


async def test_the_handle_timeout_still_applies_inside_middleware() -> None:
    queue = cq.Queue(in_process(), middleware=[Stamp("a", [])])

    @queue.listener(int)
    async def hang(job: cq.ReceivedJob) -> None:
        await asyncio.Event().wait()

    await queue.dispatch(cq.adjust(1, timeout=timedelta(milliseconds=100)))
    async with consuming(queue):
        await eventually(lambda: info_is(queue, QueueInfo(failed=1)))

    [error] = await last_errors(queue.driver, Channel.FAILED)
    assert error.startswith("HandleTimeout:")


async def test_received_headers_are_read_only() -> None:
    queue = cq.Queue(in_process(), middleware=[Stamp("a", [])])
    caught: list[BaseException] = []
    done = asyncio.Event()

    @queue.listener(int)
    async def handle(job: cq.ReceivedJob) -> None:
        try:
            job.headers["a"] = "changed"  # type: ignore[index]
        except TypeError as exc:
            caught.append(exc)
        done.set()

    await queue.dispatch(1)
    async with consuming(queue):
        await asyncio.wait_for(done.wait(), 10)

    assert len(caught) == 1


def test_an_object_with_no_hook_is_refused() -> None:
    with pytest.raises(cq.InvalidOption, match="neither on_dispatch nor around_process"):
        cq.Queue(in_process(), middleware=[object()])


async def test_the_base_class_does_nothing_and_lets_the_job_run() -> None:
    queue = cq.Queue(in_process(), middleware=[cq.Middleware()])
    done = asyncio.Event()
    queue.subscribe(cq.listen(int, lambda job: done.set()))

    await queue.dispatch(1)
    async with consuming(queue):
        await asyncio.wait_for(done.wait(), 10)
        await eventually(lambda: info_is(queue, QueueInfo()))


async def test_a_factory_gives_every_queue_its_middleware() -> None:
    config = parse_config({"queue": {"emails": {"driver": "memory"}}})
    factory = cq.QueueFactory(config, prometheus=False, middleware=[Stamp("a", [])])

    await factory.make("emails").dispatch(1)
    job = await factory.make("emails").driver.pop()

    assert job.headers == {"a": "builtins.int@emails"}
    await factory.close()


class Gate:
    """Runs the listeners only for even payloads, and swallows the ValueError they raise."""

    async def around_process(self, job: cq.ReceivedJob, call_next: CallNext) -> Any:
        if job.data % 2:
            return None
        try:
            return await call_next()
        except ValueError:
            return None


async def test_a_middleware_may_skip_the_listeners_or_swallow_their_error() -> None:
    queue = cq.Queue(in_process(), middleware=[Gate()])
    ran: list[int] = []

    def refuse(job: cq.ReceivedJob) -> None:
        ran.append(job.data)
        raise ValueError("refused")

    queue.subscribe(cq.listen(int, refuse))
    await queue.dispatch(1)
    await queue.dispatch(2)
    async with consuming(queue):
        await eventually(lambda: info_is(queue, QueueInfo()))

    assert ran == [2]  # 1 skipped, 2 ran and failed, and the middleware made it a success


async def test_a_plain_function_around_process_fails_the_attempt_with_a_clear_error() -> None:
    class NotAsync:
        def around_process(self, job: cq.ReceivedJob, call_next: CallNext) -> Any:
            return None

    queue = cq.Queue(in_process(), middleware=[NotAsync()])
    queue.subscribe(cq.listen(int, lambda job: None))

    await queue.dispatch(1)
    async with consuming(queue):
        await eventually(lambda: info_is(queue, QueueInfo(failed=1)))

    [error] = await last_errors(queue.driver, Channel.FAILED)
    assert error.startswith("MiddlewareError: middleware NotAsync.around_process raised: TypeError")
