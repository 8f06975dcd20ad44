"""SyncDispatcher, listen() and the Handler protocol."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

import corequeue as cq


@dataclass
class Ping:
    n: int


async def test_sync_dispatcher_calls_every_listener_of_the_type_in_order() -> None:
    seen: list[str] = []
    sync = cq.SyncDispatcher()

    async def first(job: cq.Job) -> None:
        seen.append(f"first {job.data.n}")

    async def second(job: cq.Job) -> None:
        seen.append(f"second {job.data.n}")

    async def other(job: cq.Job) -> None:
        seen.append("other")

    sync.subscribe(cq.listen(Ping, first))
    sync.subscribe(cq.listen(Ping, second))
    sync.subscribe(cq.listen(int, other))

    await sync.dispatch(cq.job_from(Ping(1)))

    assert seen == ["first 1", "second 1"]


async def test_sync_dispatcher_stops_at_and_raises_the_first_error() -> None:
    seen: list[str] = []
    sync = cq.SyncDispatcher()

    async def failing(job: cq.Job) -> None:
        raise ValueError("nope")

    async def after(job: cq.Job) -> None:
        seen.append("after")

    sync.subscribe(cq.listen(int, failing))
    sync.subscribe(cq.listen(int, after))

    with pytest.raises(ValueError, match="nope"):
        await sync.dispatch(cq.job_from(1))
    assert seen == []


async def test_plain_def_listeners_run_in_a_worker_thread() -> None:
    threads: list[threading.Thread] = []
    sync = cq.SyncDispatcher()
    sync.subscribe(cq.listen(int, lambda job: threads.append(threading.current_thread())))

    await sync.dispatch(cq.job_from(1))

    assert len(threads) == 1
    assert threads[0] is not threading.main_thread()


async def test_handler_objects_subscribe_by_what_they_listen_to() -> None:
    seen: list[object] = []

    class Handler:
        def listen(self) -> cq.Job:
            return cq.job_from(0)

        async def process(self, job: cq.Job) -> None:
            seen.append(job.data)

    sync = cq.SyncDispatcher()
    handler = Handler()
    assert isinstance(handler, cq.Handler)
    sync.subscribe(handler)

    await sync.dispatch(cq.job_from(5))

    assert seen == [5]


async def test_listen_accepts_a_type_name() -> None:
    seen: list[object] = []
    sync = cq.SyncDispatcher()

    async def record(job: cq.Job) -> None:
        seen.append(job.data)

    sync.subscribe(cq.listen("orders.Created", record))

    await sync.dispatch(cq.job_from({"id": 1}, type_name="orders.Created"))

    assert seen == [{"id": 1}]


def test_event_payloads_have_the_event_type_names() -> None:
    job = cq.PersistedJob(id="a", type="t", value=b"")

    assert cq.job_from(cq.BeforeRetryPayload(ValueError(), job)).type == cq.BeforeRetry
    assert cq.job_from(cq.BeforeAbortPayload(ValueError(), job)).type == cq.BeforeAbort
    assert cq.listen(cq.BeforeAbortPayload, print).job_type == cq.BeforeAbort
