"""A worker process for the OpenTelemetry test: runs one job, then prints its spans as JSON.

Usage: python -m tests.contrib.otel_worker <sqlite file>
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import corequeue as cq
from corequeue.contrib.opentelemetry import TracingMiddleware

QUEUE = "mail"


async def run(path: str) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    queue = cq.Queue(
        cq.SQLiteDriver(path, name=QUEUE), name=QUEUE, middleware=[TracingMiddleware(provider)]
    )
    done = asyncio.Event()

    @queue.listener(str)
    async def send(job: cq.ReceivedJob) -> None:
        done.set()

    worker = asyncio.create_task(queue.consume(handle_signals=False))
    async with asyncio.timeout(30):
        await done.wait()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    await queue.close()
    return list(exporter.get_finished_spans())


def as_json(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "parent_span_id": span.parent.span_id if span.parent is not None else None,
        "attributes": dict(span.attributes or {}),
    }


if __name__ == "__main__":
    spans = asyncio.run(run(sys.argv[1]))
    print(json.dumps([as_json(span) for span in spans]))
