"""TracingMiddleware with the OpenTelemetry SDK: one trace from a dispatch in this process to
the processing in a worker process, and errors recorded on the CONSUMER span."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import corequeue as cq
from corequeue.contrib.opentelemetry import TracingMiddleware
from corequeue.drivers.base import QueueInfo
from tests.contrib.otel_worker import QUEUE
from tests.integration.conftest import consuming, eventually

ROOT = Path(__file__).parents[2]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


async def test_a_dispatch_and_its_processing_in_a_worker_process_share_one_trace(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    path = tmp_path / "jobs.db"
    queue = cq.Queue(
        cq.SQLiteDriver(path, name=QUEUE), name=QUEUE, middleware=[TracingMiddleware(provider)]
    )
    tracer = provider.get_tracer("web")
    with tracer.start_as_current_span("POST /signup") as request:
        job_id = await queue.dispatch("welcome")
    await queue.close()

    worker_spans = await run_worker(path)

    publish, web = exporter.get_finished_spans()
    assert web.name == "POST /signup"
    assert publish.name == f"{QUEUE} publish"
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
    assert dict(publish.attributes or {}) == {
        "messaging.system": "corequeue",
        "messaging.destination.name": QUEUE,
        "messaging.message.id": job_id,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "corequeue.job.type": "builtins.str",
    }
    [process] = worker_spans
    assert publish.context is not None
    assert process["name"] == f"{QUEUE} process"
    assert process["kind"] == "CONSUMER"
    assert process["trace_id"] == publish.context.trace_id
    assert process["parent_span_id"] == publish.context.span_id
    assert process["attributes"] == {
        "messaging.system": "corequeue",
        "messaging.destination.name": QUEUE,
        "messaging.message.id": job_id,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "corequeue.job.type": "builtins.str",
        "corequeue.job.attempt": 1,
        "corequeue.job.max_attempts": 1,
    }


async def run_worker(path: Path) -> list[dict[str, Any]]:
    """Run tests.contrib.otel_worker on `path`; return the spans it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.contrib.otel_worker",
        str(path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    spans: list[dict[str, Any]] = json.loads(out)
    return spans


async def test_each_attempt_gets_a_consumer_span_with_its_error_recorded(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    queue = cq.Queue(
        cq.InProcessDriver(pop_interval=timedelta(milliseconds=50)),
        middleware=[TracingMiddleware(provider)],
    )

    @queue.listener(int)
    async def refuse(job: cq.ReceivedJob) -> None:
        raise ValueError(f"attempt {job.attempt} refused")

    await queue.dispatch(cq.adjust(1, max_attempts=2))
    async with consuming(queue):
        await eventually(lambda: failed(queue), within=15)

    publish, *attempts = exporter.get_finished_spans()
    assert [span.kind for span in attempts] == [SpanKind.CONSUMER, SpanKind.CONSUMER]
    for number, span in enumerate(attempts, start=1):
        assert span.parent is not None
        assert publish.context is not None
        assert span.parent.span_id == publish.context.span_id
        assert (span.attributes or {})["corequeue.job.attempt"] == number
        assert span.status.status_code is StatusCode.ERROR
        [event] = span.events
        assert event.name == "exception"
        assert (event.attributes or {})["exception.message"] == f"attempt {number} refused"


async def failed(queue: cq.Queue) -> bool:
    return await queue.info() == QueueInfo(failed=1)


async def test_a_job_without_trace_headers_starts_a_trace_of_its_own(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    untraced = cq.InProcessDriver(pop_interval=timedelta(milliseconds=50))
    await cq.Queue(untraced).dispatch(1)  # dispatched by a producer without the middleware
    queue = cq.Queue(untraced, middleware=[TracingMiddleware(provider)])
    done = asyncio.Event()
    queue.subscribe(cq.listen(int, lambda job: done.set()))

    async with consuming(queue):
        await asyncio.wait_for(done.wait(), 10)
        await eventually(lambda: empty(queue))

    [process] = exporter.get_finished_spans()
    assert process.parent is None
    assert process.status.status_code is StatusCode.UNSET


async def empty(queue: cq.Queue) -> bool:
    return await queue.info() == QueueInfo()


def test_dispatch_sync_publishes_under_the_callers_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    queue = cq.Queue(cq.InProcessDriver(), middleware=[TracingMiddleware(provider)])

    with provider.get_tracer("web").start_as_current_span("GET /view") as view:
        queue.dispatch_sync(1)
    asyncio.run(queue.close())

    publish, _ = exporter.get_finished_spans()
    assert publish.parent is not None
    assert publish.parent.span_id == view.get_span_context().span_id
    assert publish.context is not None
    [job] = asyncio.run(_waiting_jobs(queue))
    assert job.headers["traceparent"].split("-")[2] == f"{publish.context.span_id:016x}"


async def _waiting_jobs(queue: cq.Queue) -> list[cq.PersistedJob]:
    assert isinstance(queue.driver, cq.InspectDriver)
    return [view.job for view in await queue.driver.list_jobs(cq.Channel.WAITING)]
