"""One attempt of a job: decode, run the listeners under the handle timeout, settle a failure.

The outcome policy lives here, once for every driver: a failure with attempts left emits
BeforeRetry and sends the job back with the next backoff; otherwise BeforeAbort and `failed`.
A payload that cannot be decoded, or that its own class refuses (a validator or
`__post_init__` raising), fails at once without a retry: another attempt would read the same
bytes. Event listeners never lose a job: what they raise is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from corequeue.codec import Codec
from corequeue.deadlines import Deadlines
from corequeue.drivers.base import Channel
from corequeue.errors import DecodeError, EncodeError, HandleTimeout, JobCancelled, NoListener
from corequeue.events import BeforeAbortPayload, BeforeRetryPayload, JobDispatcher
from corequeue.guard import Logger
from corequeue.job import PersistedJob, ReceivedJob, job_from
from corequeue.metrics import Outcome
from corequeue.middleware import Chain
from corequeue.settlement import Settlement, job_extra

CANCELLED = "cancelled"
"""The `last_error` of a job `queue.cancel(id)` stopped while it ran."""

PayloadLookup = Callable[[str], tuple[bool, type[Any] | None]]
"""Given a job type: whether it has listeners, and the class its payload decodes into."""


@dataclass(slots=True)
class Failure:
    """Why an attempt failed and whether another attempt may help."""

    error: BaseException
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class Listeners:
    """What an attempt needs to turn a stored job into listener calls."""

    codec: Codec
    payload_class: PayloadLookup
    job_dispatcher: JobDispatcher
    event_dispatcher: JobDispatcher
    middleware: Chain = field(default_factory=lambda: Chain(()))
    keep_results: timedelta | None = None
    """How long results are kept for jobs that do not say (`adjust(keep_result=)`)."""


class Attempts:
    """Runs attempts of jobs and settles their failures.

    Args:
        listeners: The codec, the payload classes and the dispatchers.
        settlement: Where retries and failures are recorded in the store.
        backoff: The retry delay rule, given the previous delay.
        name: The queue's name, for logs.
        log: Where to log.
    """

    def __init__(
        self,
        listeners: Listeners,
        settlement: Settlement,
        *,
        backoff: Callable[[timedelta], timedelta],
        name: str,
        log: Logger,
    ) -> None:
        self.listeners = listeners
        self.settlement = settlement
        self.backoff = backoff
        self.name = name
        self.log = log
        self.deadlines = Deadlines()
        self._running: dict[int, asyncio.Task[Any]] = {}  # id(job) -> task running its listeners
        self._cancelled: set[int] = set()

    def cancel(self, job: PersistedJob) -> bool:
        """Stop the listeners of `job` (a cancel request reached its holder); the attempt then
        fails with "cancelled" and no retry. Returns False when they are not running.

        An async listener is cancelled at its next await. A plain `def` listener runs in a
        thread that nothing can stop: it goes on to its end, and what it returns is ignored.
        """
        task = self._running.get(id(job))
        if task is None or task.done():
            return False
        self._cancelled.add(id(job))
        task.cancel()
        return True

    async def run(self, job: PersistedJob) -> Failure | None:
        """Decode `job` and run its listeners under its handle timeout; None on success.

        Raises:
            asyncio.CancelledError: The consumer is shutting down (not a handle timeout).
        """
        received = self.decode(job)
        if isinstance(received, Failure):
            return received
        task = cast("asyncio.Task[None]", asyncio.current_task())
        deadline = self.deadlines.watch(task, job.handle_timeout.total_seconds())
        self._running[id(job)] = task
        try:
            returned = await self.listeners.middleware.process(
                received, lambda: self.listeners.job_dispatcher.dispatch(received)
            )
        except asyncio.CancelledError as exc:
            if deadline.expired:
                deadline.expired = False
                if task.uncancel() == 0:  # only the handle timeout asked: the attempt fails
                    return Failure(HandleTimeout(f"listeners ran longer than {job.handle_timeout}"))
                raise
            if id(job) in self._cancelled:
                self._cancelled.discard(id(job))
                if task.uncancel() == 0:  # only cancel(id) asked: failed, never retried
                    return Failure(JobCancelled(CANCELLED), retryable=False)
                raise
            if _is_cancelling():
                raise
            # Raised by a listener, not asked for by us (a library leaking one): sending the job
            # back uncounted would run it again and again, so the attempt fails instead.
            return Failure(exc)
        except BaseException as exc:  # SystemExit or KeyboardInterrupt from a listener fail the job
            return Failure(exc)
        finally:
            self._running.pop(id(job), None)
            self.deadlines.finish(deadline)
            if deadline.expired:  # the listener swallowed the cancellation: take it back
                task.uncancel()
        return self.keep_result(job, returned)

    def keep_result(self, job: PersistedJob, returned: Any) -> Failure | None:
        """Encode what the listeners returned onto `job` when its result is to be kept.

        One listener's value is the result; several listeners' values make a list, in
        subscription order. A value the codec cannot encode fails the job (no retry: the
        listeners would return the same), so a caller awaiting the result learns why.
        """
        if job.keep_result is None:
            job.keep_result = self.listeners.keep_results
        if job.keep_result is None or job.keep_result <= timedelta(0):
            return None
        if isinstance(returned, list) and len(returned) == 1:
            returned = returned[0]
        try:
            job.result = self.listeners.codec.encode(returned)
        except Exception as exc:
            error = EncodeError(f"the result cannot be encoded: {type(exc).__name__}: {exc}")
            return Failure(error, retryable=False)
        return None

    def decode(self, job: PersistedJob) -> ReceivedJob | Failure:
        """Return what the listeners receive, or a failure that no retry can mend."""
        listened, payload_class = self.listeners.payload_class(job.type)
        if not listened:
            return Failure(NoListener(f"no listener subscribed to job type {job.type!r}"), False)
        try:
            data = self.listeners.codec.decode(job.value, payload_class)
        except DecodeError as exc:
            return Failure(exc, retryable=False)
        except Exception as exc:  # the payload class refused the data, or decoding blew up
            target = payload_class.__qualname__ if payload_class is not None else "a payload"
            error = DecodeError(f"payload does not fit {target}: {type(exc).__name__}: {exc}")
            return Failure(error, retryable=False)
        return ReceivedJob(
            job.type, data, job.id, job.attempts, job.max_attempts, job, queue=self.name
        )

    async def settle_failure(self, job: PersistedJob, failure: Failure) -> Outcome:
        """Retry the job while attempts remain and the failure allows, else fail it."""
        error = failure.error
        cancelled = isinstance(error, JobCancelled)
        job.last_error = CANCELLED if cancelled else f"{type(error).__name__}: {error}"
        if failure.retryable and job.attempts < job.max_attempts:
            self.log.warning(
                "job %s (%s) attempt %d/%d failed, will retry: %s",
                job.id, job.type, job.attempts, job.max_attempts, job.last_error,
                extra=job_extra(job),
            )  # fmt: skip
            await self._emit(BeforeRetryPayload(error, job))
            job.backoff = self.backoff(job.backoff)
            job.attempts += 1
            await self.settlement.retry(job)
            return "retried"
        self.log.error(
            "job %s (%s) failed after attempt %d/%d, moved to %s: %s",
            job.id, job.type, job.attempts, job.max_attempts, Channel.FAILED, job.last_error,
            extra=job_extra(job),
        )  # fmt: skip
        await self._emit(BeforeAbortPayload(error, job))
        await self.settlement.fail(job)
        return "failed"

    async def _emit(self, payload: BeforeRetryPayload | BeforeAbortPayload) -> None:
        try:
            await self.listeners.event_dispatcher.dispatch(job_from(payload))
        except asyncio.CancelledError:
            if _is_cancelling():
                raise
            # Raised by the listener, not asked for by us: the job is settled all the same.
            self.log.exception("queue %s: event listener raised CancelledError", self.name)
        except Exception:  # an event listener must never lose the job
            self.log.exception("queue %s: event listener failed", self.name)


def _is_cancelling() -> bool:
    """Return whether someone asked the current task to stop (shutdown, a timeout)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0
