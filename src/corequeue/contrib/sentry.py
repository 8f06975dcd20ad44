"""Sentry integration: errors of jobs reported with the job they came from.

Needs the `sentry` extra (`pip install 'corequeue[sentry]'`) and `sentry_sdk.init(...)` done
by the application, as for any Sentry integration.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk

from corequeue.job import ReceivedJob
from corequeue.middleware import CallNext, DispatchedJob

CONTEXT = "corequeue job"
"""The name of the context every event of a job carries."""


class SentryMiddleware:
    """Reports what a job's listeners raise to Sentry, with the job as context.

    Each attempt runs in an isolation scope of its own that carries the context
    `corequeue job` (id, type, attempt, max_attempts, queue), the tags `corequeue.queue` and
    `corequeue.job.type`, and a breadcrumb for the attempt's start (breadcrumbs left before it,
    in the worker, are not carried over); so every event sent while
    the listeners run (a `logger.error`, an exception they capture themselves) shows the job
    too. What the listeners raise is captured, then raised on: the queue retries or fails the
    job as usual. At dispatch, a breadcrumb records the job in the caller's scope (a web
    request's, say).

    Args:
        every_attempt: Report the exception of every failed attempt (default); False reports
            only that of an attempt with no attempt left after it.

    Example:
        >>> sentry_sdk.init(dsn=os.environ["SENTRY_DSN"])  # doctest: +SKIP
        >>> queue = cq.Queue(driver, middleware=[SentryMiddleware()])  # doctest: +SKIP
    """

    def __init__(self, *, every_attempt: bool = True) -> None:
        self.every_attempt = every_attempt

    async def on_dispatch(self, job: DispatchedJob, headers: dict[str, str]) -> None:
        """Leave a breadcrumb for the dispatch in the current scope."""
        sentry_sdk.add_breadcrumb(
            category="corequeue",
            message=f"dispatched {job.type} {job.id} to queue {job.queue}",
            data={"id": job.id, "type": job.type, "queue": job.queue},
            level="info",
        )

    async def around_process(self, job: ReceivedJob, call_next: CallNext) -> Any:
        """Run one attempt in a scope of its own; report what the listeners raise."""
        with sentry_sdk.isolation_scope() as scope:
            scope.clear_breadcrumbs()  # the worker's own, or an earlier attempt's: not this job's
            scope.set_context(
                CONTEXT,
                {
                    "id": job.id,
                    "type": job.type,
                    "attempt": job.attempt,
                    "max_attempts": job.max_attempts,
                    "queue": job.queue,
                },
            )
            scope.set_tag("corequeue.queue", job.queue)
            scope.set_tag("corequeue.job.type", job.type)
            scope.add_breadcrumb(
                category="corequeue",
                message=f"attempt {job.attempt} of {job.max_attempts} of {job.type} {job.id}",
                level="info",
            )
            try:
                return await call_next()
            except Exception as exc:
                if self.every_attempt or job.attempt >= job.max_attempts:
                    scope.capture_exception(exc)
                raise
