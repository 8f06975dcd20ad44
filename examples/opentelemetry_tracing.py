"""OpenTelemetry: a web request, the dispatch and the job's processing share one trace.

Needs `pip install 'corequeue[otel]'`. Spans go to an in-memory exporter here; use the OTLP
exporter of your collector in an application.

Prints:
    POST /signup (SERVER)
      mail publish (PRODUCER)
        mail process (CONSUMER)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import corequeue as cq
from corequeue.contrib.opentelemetry import TracingMiddleware


async def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    queue = cq.Queue(
        cq.InProcessDriver(pop_interval=timedelta(milliseconds=50)),
        name="mail",
        middleware=[TracingMiddleware(provider)],
    )
    done = asyncio.Event()
    queue.subscribe(cq.listen(str, lambda job: done.set()))

    with provider.get_tracer("web").start_as_current_span("POST /signup", kind=SpanKind.SERVER):
        await queue.dispatch("welcome ada@example.com")

    worker = asyncio.create_task(queue.consume(handle_signals=False))
    await done.wait()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    show(list(exporter.get_finished_spans()))


def show(spans: list[ReadableSpan]) -> None:
    """Print the spans as a tree, each under its parent."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        by_parent.setdefault(span.parent.span_id if span.parent else None, []).append(span)

    def walk(parent: int | None, depth: int) -> None:
        for span in by_parent.get(parent, []):
            print(f"{'  ' * depth}{span.name} ({span.kind.name})")
            if span.context is not None:
                walk(span.context.span_id, depth + 1)

    walk(None, 0)


if __name__ == "__main__":
    asyncio.run(main())
