"""OpenTelemetry tracing for corequeue: one trace from the dispatch to every attempt.

Needs the `otel` extra (`pip install 'corequeue[otel]'`). Spans follow the OpenTelemetry
messaging semantic conventions: a PRODUCER span `<queue> publish` when a job is dispatched and
a CONSUMER span `<queue> process` around the listeners of each attempt, a child of the first
through the W3C `traceparent` header the job carries.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry import context, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from corequeue.job import ReceivedJob
from corequeue.middleware import CallNext, DispatchedJob

SYSTEM = "corequeue"
"""The value of `messaging.system` on every span."""


class TracingMiddleware:
    """Traces dispatches and attempts with OpenTelemetry.

    Args:
        tracer_provider: Where spans go (default: the global provider, as set by
            `opentelemetry.trace.set_tracer_provider` or the SDK's auto-instrumentation).
        propagator: How the trace context travels in the job's headers (default: W3C Trace
            Context, the `traceparent` and `tracestate` headers).

    At dispatch, a PRODUCER span `<queue> publish`, a child of the span current in the caller
    (a web request, say), marks the job's creation and its context goes into the headers. In a
    worker, each attempt runs in a CONSUMER span `<queue> process` whose parent is that
    PRODUCER span, so the request, the dispatch and every attempt share one trace. An exception
    from the listeners is recorded on the span, whose status becomes ERROR, and raised on.

    Attributes on both spans: `messaging.system` (`corequeue`), `messaging.destination.name`
    (the queue), `messaging.message.id` (the job id), `messaging.operation.type` (`send` or
    `process`), `messaging.operation.name` (`publish` or `process`) and `corequeue.job.type`;
    on the CONSUMER span also `corequeue.job.attempt` and `corequeue.job.max_attempts`.

    Example:
        >>> from corequeue.contrib.opentelemetry import TracingMiddleware
        >>> queue = cq.Queue(driver, middleware=[TracingMiddleware()])  # doctest: +SKIP
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(
            "corequeue", _corequeue_version(), tracer_provider=tracer_provider
        )
        self._propagator = propagator or TraceContextTextMapPropagator()

    async def on_dispatch(self, job: DispatchedJob, headers: dict[str, str]) -> None:
        """Record the PRODUCER span of `job` and put its context in `headers`."""
        attributes = _attributes(job.queue, job.id, job.type, "send", "publish")
        with self._tracer.start_as_current_span(
            f"{job.queue} publish", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            self._propagator.inject(headers)

    async def around_process(self, job: ReceivedJob, call_next: CallNext) -> Any:
        """Run the listeners of one attempt in a CONSUMER span, a child of the dispatch's."""
        parent = self._propagator.extract(dict(job.headers), context=context.Context())
        attributes = _attributes(job.queue, job.id, job.type, "process", "process")
        attributes["corequeue.job.attempt"] = job.attempt
        attributes["corequeue.job.max_attempts"] = job.max_attempts
        with self._tracer.start_as_current_span(
            f"{job.queue} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ):
            return await call_next()


def _attributes(
    queue: str, job_id: str, job_type: str, operation_type: str, operation_name: str
) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
        "messaging.message.id": job_id,
        "messaging.operation.type": operation_type,
        "messaging.operation.name": operation_name,
        "corequeue.job.type": job_type,
    }


def _corequeue_version() -> str:
    try:
        return version("corequeue")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
