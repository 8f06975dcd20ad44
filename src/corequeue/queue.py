"""Queue: dispatch jobs to a driver, subscribe listeners, and consume.

A Queue turns jobs into persisted envelopes on the way in and back into typed payloads on the
way out; the consume loop itself lives in `consumer.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from corequeue.attempt import Listeners
from corequeue.backoff import next_backoff
from corequeue.coalesce import PushCoalescer
from corequeue.codec import Codec, JsonCodec
from corequeue.consumer import Consumer, ConsumerParts, ConsumerSettings
from corequeue.drivers.base import Channel, Driver, QueueInfo, SystemClock, WorkerInfo
from corequeue.errors import CoreQueueError, InvalidOption, JobFailed, JobNotFound, PayloadTooLarge
from corequeue.events import (
    Handler,
    JobDispatcher,
    ListenerCallable,
    SyncDispatcher,
    listen,
    listened_type,
)
from corequeue.job import Job, PersistedJob, is_deferrable, is_job, job_from, new_job_id
from corequeue.limits import Limits
from corequeue.metrics import Gauge, JobMetrics, LabelledGauge, SlotMetrics
from corequeue.middleware import Chain, DispatchedJob
from corequeue.periodic import PeriodicInfo, Schedules, Ticker

F = TypeVar("F", bound=ListenerCallable)
T = TypeVar("T")

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
"""Largest encoded payload `dispatch` accepts unless told otherwise (1 MiB)."""

_BATCH_SIZE = 1000


class Queue:
    """A durable job queue over one driver.

    Args:
        driver: Where jobs are stored (InProcessDriver, SQLiteDriver, RedisDriver, ...).
        codec: Turns payloads into bytes and back (default: JSON via msgspec).
        event_dispatcher: Receives BeforeRetry and BeforeAbort events (default: a SyncDispatcher).
        job_dispatcher: Delivers decoded jobs to listeners (default: a SyncDispatcher).
        logger: Where the queue logs (default: the "corequeue" logger).
        parallelism: How many jobs `consume()` runs at once.
        gauge: Receives queue lengths by queue and channel every `gauge_interval`.
        gauge_interval: How often the gauge is refreshed while consuming.
        name: The queue's name, used in logs and metrics.
        metrics: Receives one observation per finished attempt.
        shutdown_grace: How long in-flight jobs may finish after consume() is cancelled.
        max_payload_bytes: Largest encoded payload dispatch accepts (None: no limit).
        backoff: The retry delay rule, given the previous delay (default: doubling with
            jitter within [1 s, 10 min]).
        prefetch: How many jobs `consume()` reserves beyond its free slots, so the next jobs
            are at hand when running ones finish: for many short jobs (try `parallelism`).
            They stay leased in the store and go back to `waiting` at shutdown. The default, 0,
            suits long jobs shared by several workers: no job waits in a busy worker while
            another worker is idle.
        middleware: Objects with an `on_dispatch` and/or an `around_process` hook, run in
            this order (see middleware.py): headers at dispatch, wrappers around listeners.
        limits: Flow-control limits (`cq.Limits`): how many jobs of the queue, or of one
            group, may be reserved at once across workers, and how many may start per window.
            The store enforces them at every pop of this queue's driver (docs/flow-control.md).
        keep_results: How long a finished job stays in `completed` with its listeners' return
            value, for `result()` (None: not kept, unless the job says with
            `adjust(keep_result=)`).
        failed_retention: How long `failed` and `timeout` jobs are kept before the workers
            prune them (None: until deleted or reloaded).

    Example:
        >>> import corequeue as cq
        >>> queue = cq.Queue(cq.SQLiteDriver("jobs.db"), parallelism=8)  # doctest: +SKIP
        >>> @queue.listener(SendEmail)  # doctest: +SKIP
        ... async def send_email(job: cq.Job) -> None: ...
        >>> later = cq.adjust(SendEmail("a@example.com"), max_attempts=5)  # doctest: +SKIP
        >>> await queue.dispatch(later)  # doctest: +SKIP
    """

    def __init__(
        self,
        driver: Driver,
        *,
        codec: Codec | None = None,
        event_dispatcher: JobDispatcher | None = None,
        job_dispatcher: JobDispatcher | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        parallelism: int = 1,
        gauge: Gauge | LabelledGauge | None = None,
        gauge_interval: timedelta = timedelta(seconds=15),
        name: str = "default",
        metrics: JobMetrics | None = None,
        shutdown_grace: timedelta = timedelta(seconds=10),
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
        backoff: Callable[[timedelta], timedelta] = next_backoff,
        prefetch: int = 0,
        middleware: Sequence[object] = (),
        limits: Limits | None = None,
        keep_results: timedelta | None = None,
        failed_retention: timedelta | None = None,
    ) -> None:
        _check_options(parallelism, gauge_interval, shutdown_grace, max_payload_bytes)
        _check_retention("keep_results", keep_results)
        _check_retention("failed_retention", failed_retention)
        self.keep_results = keep_results
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise InvalidOption(f"prefetch must be a whole number of at least 0, got {prefetch!r}")
        if limits is not None and not isinstance(limits, Limits):
            raise InvalidOption(f"limits must be a corequeue.Limits, got {type(limits).__name__}")
        self.driver = driver
        self.name = name
        self.limits = limits or Limits()
        if limits is not None:
            _give_limits(driver, limits)
        self.codec: Codec = codec or JsonCodec()
        self.event_dispatcher: JobDispatcher = event_dispatcher or SyncDispatcher()
        self.job_dispatcher: JobDispatcher = job_dispatcher or SyncDispatcher()
        self.logger = logger or logging.getLogger("corequeue")
        self.gauge = gauge
        self.metrics = metrics
        self.max_payload_bytes = max_payload_bytes
        self.settings = ConsumerSettings(
            parallelism=parallelism,
            prefetch=prefetch,
            shutdown_grace=shutdown_grace,
            gauge_interval=gauge_interval,
            backoff=backoff,
            failed_retention=failed_retention,
        )
        self.middleware = Chain(middleware)
        self._pushes = PushCoalescer(driver)
        self._schedules = Schedules()
        self._payload_classes: dict[str, type[Any] | None] = {}

    def __repr__(self) -> str:
        return f"Queue({self.driver!r}, name={self.name!r})"

    # --- listeners -------------------------------------------------------------------------

    def subscribe(self, handler: Handler) -> None:
        """Register a listener (a `listen(...)` function or a Handler object).

        Several listeners may share a type: all run, and if any fails the job is retried.
        """
        job_type, payload_class = listened_type(handler.listen())
        known = self._payload_classes.get(job_type)
        if known is not None and payload_class is not None and known is not payload_class:
            raise InvalidOption(
                f"type {job_type!r} is already listened to as {known.__qualname__}, "
                f"not {payload_class.__qualname__}"
            )
        self._payload_classes[job_type] = known or payload_class
        self.job_dispatcher.subscribe(handler)

    def listener(self, wanted: type[Any] | Job | str) -> Callable[[F], F]:
        """Subscribe the decorated function to jobs of `wanted` (a class, job or type name).

        Example:
            >>> @queue.listener(SendEmail)  # doctest: +SKIP
            ... async def send_email(job: cq.Job) -> None:
            ...     await mailer.send(job.data.to)
        """

        def register(fn: F) -> F:
            self.subscribe(listen(wanted, fn))
            return fn

        return register

    def payload_class(self, job_type: str) -> tuple[bool, type[Any] | None]:
        """Return whether `job_type` has listeners, and the class its payload decodes into."""
        if job_type not in self._payload_classes:
            return False, None
        return True, self._payload_classes[job_type]

    # --- dispatch --------------------------------------------------------------------------

    async def dispatch(self, job: Any, **push_options: Any) -> str:
        """Persist a job through the driver and return its id.

        A value that is not a Job is wrapped with `job_from`; a job that is not deferrable gets
        `adjust()` defaults (at once, one attempt, one hour timeout). Extra keyword arguments go
        to the driver's `push` (for example `connection=` for PostgreSQL transactional enqueue).

        Concurrent dispatches from one event loop share round trips: those made while another
        is in flight go to the store together, in order, as one batch (see `coalesce.py`).

        Raises:
            EncodeError: The codec cannot encode the payload.
            PayloadTooLarge: The encoded payload is over `max_payload_bytes`.
            MiddlewareError: An `on_dispatch` hook raised; nothing was enqueued.
            StoreUnavailable: The store did not take the job; nothing was enqueued.
        """
        if self.middleware.dispatch_hooks:
            pushed = await self._prepare(job)
        else:  # the common case, taken without one more coroutine per dispatch
            pushed = self.persist(job)
        if push_options:  # a transaction of the caller's: never batched with other dispatches
            await self.driver.push(*pushed, **push_options)
        else:
            await self._pushes.push(pushed)
        return pushed[0].id

    async def dispatch_many(self, jobs: Iterable[Any], **push_options: Any) -> list[str]:
        """Persist many jobs, in one round trip per batch where the driver allows; return ids."""
        persisted = [await self._prepare(job) for job in jobs]
        for start in range(0, len(persisted), _BATCH_SIZE):
            await self.driver.push_many(persisted[start : start + _BATCH_SIZE], **push_options)
        return [job.id for job, _ in persisted]

    def dispatch_sync(self, job: Any, **push_options: Any) -> str:
        """Dispatch from synchronous code (a Django or Flask view, a script); return the id.

        Thread-safe. Persists the job here and stores it with the driver's `push_sync`, which
        the corequeue drivers run with a synchronous client of their own: no event loop is
        involved. Extra keyword arguments go to `push_sync` (PostgreSQL takes `connection=`,
        a psycopg Connection whose transaction the job joins). Unlike `dispatch`, concurrent
        calls are not batched: each is one round trip, on a connection of its own.

        Raises:
            CoreQueueError: When called from a running event loop (use `await dispatch()`).
            EncodeError: The codec cannot encode the payload.
            PayloadTooLarge: The encoded payload is over `max_payload_bytes`.
            MiddlewareError: An `on_dispatch` hook raised; nothing was enqueued.
            StoreUnavailable: The store did not take the job; nothing was enqueued.
        """
        persisted, delay = self.prepare_sync(job)
        self.driver.push_sync(persisted, delay, **push_options)
        return persisted.id

    def prepare_sync(self, job: Any) -> tuple[PersistedJob, timedelta]:
        """Build the envelope `dispatch_sync` would store, middleware headers included.

        For integrations that store it later themselves (after a commit, say) with the
        driver's `push_sync`: the `on_dispatch` hooks run now, in the caller's context.

        Raises:
            CoreQueueError: When called from a running event loop.
            EncodeError, PayloadTooLarge, MiddlewareError: As for `dispatch_sync`.
        """
        _refuse_running_loop()
        persisted, delay = self.persist(job)
        if self.middleware.dispatch_hooks:
            dispatched = self._dispatched(job, persisted, delay)
            persisted.headers = self.middleware.headers_for_sync(dispatched, persisted.headers)
        return persisted, delay

    # --- periodic jobs ---------------------------------------------------------------------

    def periodic(
        self,
        schedule: str | timedelta,
        job: Any,
        *,
        name: str,
        tz: str = "UTC",
        misfire: str = "skip",
    ) -> None:
        """Declare a periodic job: every consumer of this queue enqueues its due slots.

        Each slot's job is enqueued exactly once across all workers sharing the store, with id
        `periodic:<name>:<slot in epoch ms>`, never before the slot on the store's clock.
        Declare the same schedules in every worker process of the queue (see docs/periodic.md).

        Args:
            schedule: A cron expression (5 fields, or 6 with seconds first, or `@hourly` and
                the like) or a `timedelta` (slots aligned to the Unix epoch).
            job: The job (any value `dispatch` takes), or a callable given the slot's aware
                datetime that returns one (it may be async).
            name: Unique on the queue, 1 to 200 characters, no `:`.
            tz: The IANA time zone the cron fields are read in.
            misfire: `skip` drops slots missed while no worker ran; `once` runs one catch-up
                job for them.

        Raises:
            InvalidOption: A bad schedule, zone, name or policy.
            EncodeError: A job value the codec cannot encode.

        Example:
            >>> queue.periodic("0 7 * * *", SendReport(), name="daily-report",
            ...                tz="Europe/Berlin")  # doctest: +SKIP
        """
        entry = self._schedules.add(schedule, job, name=name, tz=tz, misfire=misfire)
        if not entry.is_factory:
            self.persist(job)  # a job the codec refuses fails here, not at every slot

    async def periodic_schedules(self) -> list[PeriodicInfo]:
        """Return the schedules declared on this queue, with their next and last runs."""
        slots = await self.driver.schedule_slots()
        now_ms = (self.driver.clock or SystemClock()).now_ms()
        return self._schedules.infos(now_ms, slots)

    # --- other operations ------------------------------------------------------------------

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job, or stop a running one; return whether it did.

        For a reserved job the request is recorded in the store: the worker holding it sees
        it at its next lease renewal (within a third of a lease), cancels its listeners and
        moves it to `failed` with `last_error` "cancelled", with no retry, after a
        `BeforeAbort` event (its error a JobCancelled). An async listener stops at its next
        await. A plain `def` listener runs in a thread that cannot be stopped: it goes on to
        its end and its outcome is ignored; the job is failed as soon as the request arrives.
        Returns True when the job was removed or the request recorded.
        """
        return await self.driver.cancel(job_id)

    async def info(self) -> QueueInfo:
        """Return the number of jobs in each channel."""
        return await self.driver.info()

    async def pause(self) -> None:
        """Stop every worker of this queue from starting jobs, until `resume()`.

        The flag is kept in the store, so it holds for every process sharing it. Dispatches
        are still accepted; running jobs finish and are settled as usual.

        Example:
            >>> await queue.pause()  # doctest: +SKIP
        """
        await self.driver.pause()

    async def resume(self) -> None:
        """Let the workers of this queue start jobs again after `pause()`."""
        await self.driver.resume()

    async def is_paused(self) -> bool:
        """Whether the queue is paused (as the store says)."""
        return await self.driver.is_paused()

    async def workers(self) -> list[WorkerInfo]:
        """Return the workers consuming this queue: those that beat within three renewal
        periods (one lease), from any process or machine sharing the store.

        Example:
            >>> for worker in await queue.workers():  # doctest: +SKIP
            ...     print(worker.hostname, worker.pid, worker.running)
        """
        return await self.driver.workers()

    async def result(
        self,
        job_id: str,
        timeout: timedelta | float | None = None,  # noqa: ASYNC109 - the name SPEC.md fixes
        type: type[T] | None = None,
    ) -> Any:
        """Wait for job `job_id` to finish and return its result.

        The result is what its listener returned (a list in subscription order when several
        listeners ran), kept while the job stays in `completed` (`Queue(keep_results=)` or
        `adjust(keep_result=)`). Works from any process sharing the store: waiting does not
        poll in a tight loop (see docs/results.md for each driver's wake-up).

        Args:
            job_id: The id `dispatch()` returned.
            timeout: How long to wait, a timedelta or seconds (None: until it finishes).
            type: The class to decode the result into (None: plain JSON values).

        Raises:
            JobFailed: The job ended in `failed` or `timeout` (its `last_error` says why).
            JobNotFound: No such job: unknown, finished without keeping its result, or pruned.
            TimeoutError: The job is still waiting, delayed or running after `timeout`.

        Example:
            >>> kept = cq.adjust(Resize(42), keep_result=timedelta(hours=1))  # doctest: +SKIP
            >>> job_id = await queue.dispatch(kept)  # doctest: +SKIP
            >>> size = await queue.result(job_id, timeout=10, type=int)  # doctest: +SKIP
        """
        wait = timedelta(seconds=timeout) if isinstance(timeout, int | float) else timeout
        if wait is not None and wait < timedelta(0):
            raise InvalidOption(f"timeout must not be negative, got {timeout!r}")
        view = await self.driver.wait_finished(job_id, wait)
        if view is None:
            raise JobNotFound(job_id)
        if view.channel is Channel.COMPLETED:
            result = view.job.result
            return None if result is None else self.codec.decode(result, type)
        if view.channel in (Channel.FAILED, Channel.TIMEOUT):
            raise JobFailed(job_id, view.job.last_error, view.channel.value)
        raise TimeoutError(f"job {job_id} is still {view.channel.value} after {wait}")

    def persist(self, job: Any) -> tuple[PersistedJob, timedelta]:
        """Build the envelope of `job` and the delay before it may run."""
        if isinstance(job, PersistedJob):
            return job, timedelta(0)
        if not is_job(job):
            job = job_from(job)
        value = self.codec.encode(job.data)
        if self.max_payload_bytes is not None and len(value) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of {job.type} is {len(value)} bytes encoded; this queue accepts at "
                f"most {self.max_payload_bytes} (Queue(max_payload_bytes=...))"
            )
        persisted = PersistedJob(id=new_job_id(), type=job.type, value=value)
        if not is_deferrable(job):
            return persisted, timedelta(0)
        delay = job.defer()
        job.decorate(persisted)
        if delay < timedelta(0):
            raise InvalidOption(f"defer() of {job.type} returned a negative delay: {delay}")
        return persisted, delay

    async def _prepare(self, job: Any) -> tuple[PersistedJob, timedelta]:
        """Build the envelope of `job` with the headers of the `on_dispatch` hooks."""
        persisted, delay = self.persist(job)
        if self.middleware.dispatch_hooks:
            dispatched = self._dispatched(job, persisted, delay)
            persisted.headers = await self.middleware.headers_for(dispatched, persisted.headers)
        return persisted, delay

    def _dispatched(self, job: Any, persisted: PersistedJob, delay: timedelta) -> DispatchedJob:
        """What the `on_dispatch` hooks see of `job`, about to be stored as `persisted`."""
        data = job.data if is_job(job) and not isinstance(job, PersistedJob) else job
        return DispatchedJob(persisted.type, data, persisted.id, self.name, delay)

    # --- consume ---------------------------------------------------------------------------

    async def consume(self, *, handle_signals: bool = True) -> None:
        """Run jobs until cancelled (or SIGTERM/SIGINT), then shut down gracefully.

        In-flight jobs get `shutdown_grace` to finish; the rest go back to `waiting` without
        counting an attempt.

        Args:
            handle_signals: Turn SIGTERM and SIGINT into a graceful stop (main thread only).
        """
        settings = replace(self.settings, handle_signals=handle_signals)
        listeners = Listeners(
            codec=self.codec,
            payload_class=self.payload_class,
            job_dispatcher=self.job_dispatcher,
            event_dispatcher=self.event_dispatcher,
            middleware=self.middleware,
            keep_results=self.keep_results,
        )
        parts = ConsumerParts(
            name=self.name,
            driver=self.driver,
            listeners=listeners,
            log=self.logger,
            metrics=self.metrics,
            gauge=self.gauge,
            ticker=self._ticker(),
        )
        await Consumer(parts, settings).run()

    def _ticker(self) -> Ticker | None:
        """The ticker of this queue's schedules (None without any).

        Slot outcomes go to `metrics` when it also counts slots (`SlotMetrics.observe_slot`).
        """
        if not len(self._schedules):
            return None
        clock = self.driver.clock or SystemClock()
        log = self.logger if isinstance(self.logger, logging.Logger) else None
        slot_metrics = self.metrics if isinstance(self.metrics, SlotMetrics) else None
        return Ticker(
            self.driver,
            clock,
            self._schedules,
            self.persist,
            log=log,
            metrics=slot_metrics,
            queue=self.name,
        )

    async def close(self) -> None:
        """Close the driver: its connections, those of `dispatch_sync` included."""
        await self.driver.close()


def _give_limits(driver: Driver, limits: Limits) -> None:
    """Hand `limits` to the driver, which enforces them at every pop; refuse one that cannot."""
    set_limits = getattr(driver, "set_limits", None)
    if set_limits is None:
        raise InvalidOption(
            f"{type(driver).__name__} does not enforce limits (it has no set_limits): "
            f"Queue(limits=...) needs a driver that does"
        )
    set_limits(limits)


def _refuse_running_loop() -> None:
    """Raise CoreQueueError when an event loop runs in this thread: it would block."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise CoreQueueError(
        "dispatch_sync() was called from a running event loop: use await dispatch()"
    )


def _check_retention(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, timedelta) or value < timedelta(0)):
        raise InvalidOption(f"{name} must be a timedelta of at least 0 or None, got {value!r}")


def _check_options(
    parallelism: int,
    gauge_interval: timedelta,
    shutdown_grace: timedelta,
    max_payload_bytes: int | None,
) -> None:
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
        raise InvalidOption(
            f"parallelism must be a whole number of at least 1, got {parallelism!r}"
        )
    if gauge_interval <= timedelta(0):
        raise InvalidOption(f"gauge_interval must be positive, got {gauge_interval}")
    if shutdown_grace < timedelta(0):
        raise InvalidOption(f"shutdown_grace must not be negative, got {shutdown_grace}")
    if max_payload_bytes is not None and max_payload_bytes < 1:
        raise InvalidOption(f"max_payload_bytes must be positive, got {max_payload_bytes}")
