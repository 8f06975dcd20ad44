"""The consume loop: pop jobs into slots, keep the side tasks alive, shut down gracefully.

One popper fills up to `parallelism` job tasks (plus a prefetch); each job task runs one attempt
(`attempt.py`) and hands the outcome to the store side (`settlement.py`). Side tasks (lease
renewal, batch acks, the queue-length gauge) are supervised: if one dies, the consumer stops
popping, shuts down as on cancellation and raises `WorkerCrashed` from `consume()`: a worker never
stalls silently. A job task never leaves its job reserved: whatever goes wrong, the job is
retried, failed or released. A queue with periodic jobs also runs their ticker as a side task.

On cancellation (or SIGTERM/SIGINT) the popper stops, in-flight jobs get the grace period, what
is still running then is cancelled and released back to `waiting` without counting an attempt,
and pending acks are flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from corequeue.attempt import CANCELLED, Attempts, Failure, Listeners
from corequeue.backoff import next_backoff
from corequeue.drivers.base import Driver
from corequeue.errors import JobCancelled, QueueEmpty, WorkerCrashed
from corequeue.guard import Guard, Logger
from corequeue.heartbeat import Heartbeat
from corequeue.job import PersistedJob
from corequeue.metrics import (
    Gauge,
    HeldBackMetrics,
    JobMetrics,
    LabelledGauge,
    Outcome,
    set_gauge,
)
from corequeue.periodic import Ticker
from corequeue.retention import Pruner
from corequeue.settlement import (
    RETRY_FIRST_SECONDS,
    RETRY_MAX_SECONDS,
    Settlement,
    guarded_observer,
    job_extra,
)


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """How `consume()` runs: options that travel together from the Queue to the consumer."""

    parallelism: int = 1
    prefetch: int = 0
    shutdown_grace: timedelta = timedelta(seconds=10)
    gauge_interval: timedelta = timedelta(seconds=15)
    handle_signals: bool = True
    backoff: Callable[[timedelta], timedelta] = next_backoff
    failed_retention: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ConsumerParts:
    """What a consumer needs of its queue, given explicitly: it never sees the Queue itself."""

    name: str
    driver: Driver
    listeners: Listeners
    log: Logger
    metrics: JobMetrics | None = None
    gauge: Gauge | LabelledGauge | None = None
    ticker: Ticker | None = None
    """Enqueues the due slots of the queue's periodic jobs (None: the queue has none)."""


class Consumer:
    """Runs the jobs of one queue until cancelled."""

    def __init__(self, parts: ConsumerParts, settings: ConsumerSettings) -> None:
        self.name = parts.name
        self.driver = parts.driver
        self.settings = settings
        self.log = parts.log
        self._gauge = parts.gauge
        self._held_metrics = parts.metrics if isinstance(parts.metrics, HeldBackMetrics) else None
        self._held_reported: dict[str, int] = {}
        self._ticker = parts.ticker
        self._gauge_guard = Guard(parts.log, f"queue {parts.name}: gauge")
        report = guarded_observer(
            Guard(parts.log, f"queue {parts.name}: metrics observer"),
            parts.metrics.observe if parts.metrics is not None else None,
            parts.name,
        )

        def observe(job: PersistedJob, outcome: Outcome, duration: float) -> None:
            self.heartbeat.tally.add(outcome)  # the fleet-wide counters in the store
            report(job, outcome, duration)

        self._observe = observe
        self._slot_freed = asyncio.Event()
        self.settlement = Settlement(
            parts.driver,
            name=parts.name,
            log=parts.log,
            observe=self._observe,
            on_settled=self._slot_freed.set,
            on_cancel=self._cancel_job,
        )
        self.attempts = Attempts(
            parts.listeners,
            self.settlement,
            backoff=settings.backoff,
            name=parts.name,
            log=parts.log,
        )
        self._pruner = Pruner(
            parts.driver, settings.failed_retention, name=parts.name, log=parts.log
        )
        self._in_flight: set[asyncio.Task[None]] = set()
        self.heartbeat = Heartbeat(
            parts.driver, lambda: len(self._in_flight), name=parts.name, log=parts.log
        )
        self._ready: deque[PersistedJob] = deque()  # prefetched, leased, waiting for a slot
        self._signalled = False

    async def run(self) -> None:
        """Pop and run jobs until cancelled; then shut down gracefully.

        Raises:
            WorkerCrashed: A side task (lease renewal, acks, gauge) died; the consumer shut
                down first, releasing what it held.
        """
        # The popper and the ticker stop first: a stopping worker takes and enqueues nothing.
        producers = {
            asyncio.create_task(self._pop_loop(), name=f"pop {self.name}"),
            asyncio.create_task(self._tick(), name=f"periodic {self.name}"),
        }
        helpers = {
            asyncio.create_task(self._report_lengths(), name=f"gauge {self.name}"),
            asyncio.create_task(self.settlement.renew_loop(), name=f"leases {self.name}"),
            asyncio.create_task(
                self._pruner.run(self.driver.lease / 3), name=f"retention {self.name}"
            ),
            asyncio.create_task(
                self.heartbeat.run(self.driver.lease / 3), name=f"heartbeat {self.name}"
            ),
        }
        acker = asyncio.create_task(self.settlement.ack_loop(), name=f"acks {self.name}")
        crashed: tuple[str, BaseException] | None = None
        try:
            with self._signals_cancel_me():
                crashed = await _first_crash({*producers, acker, *helpers})
        except asyncio.CancelledError:
            if not self._signalled:
                raise
            # Stopped by SIGTERM/SIGINT: a clean exit, not an error.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        finally:
            for producer in producers:
                producer.cancel()
            await asyncio.gather(*producers, return_exceptions=True)
            await self._shut_down(acker)
            self.attempts.deadlines.close()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.heartbeat.leave()
        if crashed is not None:
            task_name, error = crashed
            raise WorkerCrashed(
                f"queue {self.name}: {task_name} stopped: {type(error).__name__}: {error}"
            ) from error

    # --- popping ---------------------------------------------------------------------------

    async def _pop_loop(self) -> None:
        failures = 0
        while True:
            while self._room() < 1:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            try:
                jobs = await self._pop(self._room())
            except QueueEmpty:
                failures = 0
                continue
            except Exception as exc:  # store down or driver bug: back off and try again
                failures += 1
                delay = min(RETRY_FIRST_SECONDS * 2**failures, RETRY_MAX_SECONDS * 2.5)
                self.log.warning(
                    "queue %s: cannot pop (%s); retrying in %.2fs", self.name, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            for job in jobs:
                self.settlement.hold(job)
            self._ready.extend(jobs)
            self._start_ready()

    async def _pop(self, limit: int) -> list[PersistedJob]:
        # The pop is shielded: if we are cancelled while the store is reserving a job, wait for
        # its answer and give the job back instead of leaving it reserved until its lease ends.
        popping = asyncio.ensure_future(self.driver.pop_many(limit))
        try:
            return await asyncio.shield(popping)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                timeout = self.driver.pop_timeout.total_seconds() + 5
                for job in await asyncio.wait_for(popping, timeout):
                    await self.settlement.release(job)
            raise

    def _room(self) -> int:
        """How many more jobs to pop: free slots plus the prefetch, within the jobs held.

        Finished jobs free their slot before their ack, so popping overlaps acking, and
        prefetched jobs wait leased in `_ready`, so popping overlaps running; the jobs held
        (prefetched, running or awaiting an ack) stay bounded all the same.
        """
        parallelism, prefetch = self.settings.parallelism, self.settings.prefetch
        wanted = parallelism + prefetch - len(self._in_flight) - len(self._ready)
        return min(wanted, 2 * parallelism + prefetch - self.settlement.held_count)

    def _start_ready(self) -> None:
        while self._ready and len(self._in_flight) < self.settings.parallelism:
            job = self._ready.popleft()
            task = asyncio.create_task(self._run_job(job), name=f"job {job.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._start_ready()
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            self.log.error("queue %s: job task crashed", self.name, exc_info=task.exception())

    # --- one job ---------------------------------------------------------------------------

    def _cancel_job(self, job: PersistedJob) -> None:
        """Stop a held job that `cancel(id)` asked to stop: its listeners, or its start."""
        if self.attempts.cancel(job):
            return
        waiting = [ready for ready in self._ready if ready is job]
        if waiting:  # prefetched, not started: fail it without running it
            self._ready.remove(waiting[0])
            task = asyncio.create_task(self._fail_cancelled(job), name=f"cancel {job.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    async def _fail_cancelled(self, job: PersistedJob) -> None:
        outcome = await self._settle_failure(job, Failure(JobCancelled(CANCELLED), False))
        self._observe(job, outcome, 0.0)

    async def _run_job(self, job: PersistedJob) -> None:
        started = time.perf_counter()
        try:
            failure = await self.attempts.run(job)
        except asyncio.CancelledError:
            await self.settlement.release(job)
            raise
        except Exception as exc:  # a fault outside the listener call: never retried blindly
            self.log.exception("job %s: attempt crashed", job.id, extra=job_extra(job))
            failure = Failure(exc, retryable=False)
        duration = time.perf_counter() - started
        if failure is None:  # the acker removes it from the store, with others, then observes
            self.settlement.ack_later(job, duration)
            return
        try:
            outcome = await self._settle_failure(job, failure)
        except asyncio.CancelledError:  # shut down while an event listener ran: never stranded
            await self.settlement.release(job)
            raise
        self._observe(job, outcome, duration)

    async def _settle_failure(self, job: PersistedJob, failure: Failure) -> Outcome:
        try:
            return await self.attempts.settle_failure(job, failure)
        except Exception:  # a backoff rule that raises, say: park the job rather than strand it
            self.log.exception("job %s: cannot settle its failure; failing it", job.id,
                               extra=job_extra(job))  # fmt: skip
            await self.settlement.fail(job)
            return "failed"

    # --- shutdown, gauge, signals ----------------------------------------------------------

    async def _shut_down(self, acker: asyncio.Task[None]) -> None:
        prefetched, self._ready = list(self._ready), deque()
        for job in prefetched:  # never started: back to waiting at once, for other workers
            await self.settlement.release(job)
        if self._in_flight:
            grace = self.settings.shutdown_grace.total_seconds()
            self.log.info("queue %s: waiting up to %.0fs for %d jobs", self.name, grace,
                          len(self._in_flight))  # fmt: skip
            _, unfinished = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        self.settlement.stop()  # the acker flushes what is left, then returns
        if not acker.done():
            await asyncio.gather(acker, return_exceptions=True)
        await self.settlement.ack_pending()  # left by an acker that died

    async def _tick(self) -> None:
        """Enqueue the due slots of the queue's periodic jobs until cancelled."""
        if self._ticker is not None:
            await self._ticker.run(asyncio.Event())  # never set: stopped by cancellation

    async def _report_lengths(self) -> None:
        """Every gauge interval: the queue lengths, and the holds of its limits since the last."""
        gauge = self._gauge
        if gauge is None and self._held_metrics is None:
            return
        while True:
            self._report_held_back()
            if gauge is not None:
                await self._set_lengths(gauge)
            await asyncio.sleep(self.settings.gauge_interval.total_seconds())

    async def _set_lengths(self, gauge: Gauge | LabelledGauge) -> None:
        try:
            info = await self.driver.info()
        except Exception as exc:
            self.log.warning("queue %s: cannot read queue lengths: %s", self.name, exc)
            return
        for channel, count in info.as_dict().items():
            self._gauge_guard.call(set_gauge, gauge, count, queue=self.name, channel=channel)

    def _report_held_back(self) -> None:
        metrics = self._held_metrics
        if metrics is None:
            return
        held_back = getattr(self.driver, "held_back", None)  # a driver of your own may lack it
        if held_back is None:
            return
        for reason, total in held_back().items():
            new = total - self._held_reported.get(reason, 0)
            if new > 0:
                self._held_reported[reason] = total
                self._gauge_guard.call(metrics.observe_held_back, self.name, reason.value, new)

    @contextlib.contextmanager
    def _signals_cancel_me(self) -> Iterator[None]:
        """Turn SIGTERM and SIGINT into cancellation of this consumer (main thread only)."""
        task = asyncio.current_task()
        if (
            not self.settings.handle_signals
            or task is None
            or threading.current_thread() is not threading.main_thread()
        ):
            yield
            return
        loop = asyncio.get_running_loop()
        installed = []

        def stop(sig: signal.Signals) -> None:
            self.log.info("queue %s: %s received, shutting down", self.name, sig.name)
            self._signalled = True
            task.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop, sig)
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


async def _first_crash(tasks: set[asyncio.Task[None]]) -> tuple[str, BaseException] | None:
    """Wait until one of `tasks` raises; return its name and error.

    A task that returns normally (a gauge that is not configured) is simply done. Cancellation
    of the caller propagates; the tasks are left for the caller to stop.
    """
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.cancelled():
                return task.get_name(), asyncio.CancelledError(f"{task.get_name()} was cancelled")
            error = task.exception()
            if error is not None:
                return task.get_name(), error
    return None
