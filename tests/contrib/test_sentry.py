"""SentryMiddleware with the Sentry SDK and a transport that captures what it would send."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

import corequeue as cq
from corequeue.contrib.sentry import CONTEXT, SentryMiddleware
from corequeue.drivers.base import QueueInfo
from tests.integration.conftest import consuming, eventually


class CapturingTransport(Transport):
    """Keeps the events the SDK would send."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event" and item.payload.json is not None:
                self.events.append(item.payload.json)


@pytest.fixture
def transport() -> Iterator[CapturingTransport]:
    transport = CapturingTransport()
    sentry_sdk.init(
        dsn="https://public@sentry.example.com/1",
        transport=transport,
        default_integrations=False,
    )
    sentry_sdk.get_isolation_scope().clear_breadcrumbs()  # left by earlier tests of the process
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: the SDK sends nothing in later tests


def in_process() -> cq.InProcessDriver:
    return cq.InProcessDriver(pop_interval=timedelta(milliseconds=50))


async def test_an_exception_of_a_listener_is_reported_with_the_job_as_context(
    transport: CapturingTransport,
) -> None:
    queue = cq.Queue(in_process(), name="billing", middleware=[SentryMiddleware()])

    @queue.listener(int)
    async def charge(job: cq.ReceivedJob) -> None:
        raise ValueError(f"card declined on attempt {job.attempt}")

    job_id = await queue.dispatch(cq.adjust(5, max_attempts=2))
    async with consuming(queue):
        await eventually(lambda: info_is(queue, QueueInfo(failed=1)), within=15)

    assert len(transport.events) == 2
    for attempt, event in enumerate(transport.events, start=1):
        [exception] = event["exception"]["values"]
        assert exception["type"] == "ValueError"
        assert exception["value"] == f"card declined on attempt {attempt}"
        assert event["contexts"][CONTEXT] == {
            "id": job_id,
            "type": "builtins.int",
            "attempt": attempt,
            "max_attempts": 2,
            "queue": "billing",
        }
        assert event["tags"] == {"corequeue.queue": "billing", "corequeue.job.type": "builtins.int"}
        crumbs = [crumb["message"] for crumb in event["breadcrumbs"]["values"]]
        assert crumbs == [f"attempt {attempt} of 2 of builtins.int {job_id}"]


async def test_only_the_last_attempt_is_reported_when_asked(
    transport: CapturingTransport,
) -> None:
    queue = cq.Queue(in_process(), middleware=[SentryMiddleware(every_attempt=False)])

    @queue.listener(int)
    async def charge(job: cq.ReceivedJob) -> None:
        raise ValueError(f"attempt {job.attempt}")

    await queue.dispatch(cq.adjust(5, max_attempts=3))
    async with consuming(queue):
        await eventually(lambda: info_is(queue, QueueInfo(failed=1)), within=20)

    assert [event["exception"]["values"][0]["value"] for event in transport.events] == ["attempt 3"]


async def test_events_a_listener_sends_itself_carry_the_job_and_stay_apart(
    transport: CapturingTransport,
) -> None:
    queue = cq.Queue(in_process(), parallelism=2, middleware=[SentryMiddleware()])
    both_running = asyncio.Barrier(2)

    @queue.listener(int)
    async def report(job: cq.ReceivedJob) -> None:
        await both_running.wait()  # two attempts at once: each event keeps its own job
        sentry_sdk.capture_message(f"job {job.data}")

    ids = {await queue.dispatch(1): "job 1", await queue.dispatch(2): "job 2"}
    async with consuming(queue):
        await eventually(lambda: info_is(queue, QueueInfo()))
        await eventually(lambda: _true(len(transport.events) == 2))

    assert {event["contexts"][CONTEXT]["id"]: event["message"] for event in transport.events} == ids


async def test_a_dispatch_leaves_a_breadcrumb_in_the_callers_scope(
    transport: CapturingTransport,
) -> None:
    queue = cq.Queue(in_process(), name="mail", middleware=[SentryMiddleware()])

    with sentry_sdk.isolation_scope():
        job_id = await queue.dispatch("hello")
        sentry_sdk.capture_message("request failed later")

    [event] = transport.events
    [crumb] = event["breadcrumbs"]["values"]
    assert crumb["message"] == f"dispatched builtins.str {job_id} to queue mail"
    assert crumb["data"] == {"id": job_id, "type": "builtins.str", "queue": "mail"}


async def info_is(queue: cq.Queue, expected: QueueInfo) -> bool:
    return await queue.info() == expected


async def _true(value: bool) -> bool:
    return value
