"""The parallel consume loop: pop under a lease, run the listeners, ack / retry / fail, shut down.

One popper fills up to `parallelism` job tasks; each runs the listeners under the handle timeout.
Every job the consumer holds stays reserved under a lease in the store until it is settled: one
periodic task renews all those leases, and one acker removes finished jobs in batches (one
round trip for many jobs where the driver allows), so a job leaves the store only after its
listeners finished. Failures are settled at once by their own task (retry or fail, with events).
On cancellation the popper stops, in-flight jobs get the grace period, what is still running then
is cancelled and released back to `waiting` without counting an attempt, and pending acks are
flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from corequeue.deadlines import Deadlines
from corequeue.drivers.base import (
    DEFAULT_POP_TIMEOUT,
    BatchDriver,
    BatchLeaseDriver,
    Channel,
    Driver,
    LeaseDriver,
)
from corequeue.errors import DecodeError, HandleTimeout, NoListener, QueueEmpty
from corequeue.events import BeforeAbortPayload, BeforeRetryPayload
from corequeue.job import PersistedJob, ReceivedJob, job_from
from corequeue.metrics import Outcome, set_gauge

if TYPE_CHECKING:
    from corequeue.queue import ConsumerSettings, Queue

_STORE_RETRY_FIRST = 0.05
_STORE_RETRY_MAX = 2.0
_ACK_BATCH = 1000  # most jobs one ack_many call removes


@dataclass(slots=True)
class _Failure:
    """Why an attempt failed and whether another attempt may help."""

    error: BaseException
    retryable: bool = True


class Consumer:
    """Runs the jobs of one queue until cancelled."""

    def __init__(self, queue: Queue, settings: ConsumerSettings) -> None:
        self.queue = queue
        self.driver = queue.driver
        self.settings = settings
        self.log = queue.logger
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._signalled = False
        # Protocol isinstance checks are slow: answer them once, not once per job.
        driver = self.driver
        self._leases = driver if isinstance(driver, LeaseDriver) else None
        self._batch_leases = driver if isinstance(driver, BatchLeaseDriver) else None
        self._batch_pop = driver if isinstance(driver, BatchDriver) else None
        lease = self._leases.lease if self._leases is not None else None
        self._renew_every = lease / 3 if lease else None
        self._give_up_seconds = lease.total_seconds() if lease else 30.0
        # Every job popped and not yet settled, running or waiting for its ack: its lease is
        # renewed until it is settled. Keyed by object identity: the same id may be popped
        # again after a lost lease while the first run still goes on.
        self._held: dict[int, PersistedJob] = {}
        self._ready: deque[PersistedJob] = deque()  # prefetched, leased, waiting for a slot
        self._acks: list[tuple[PersistedJob, float]] = []  # (finished job, handler seconds)
        self._acks_due = asyncio.Event()
        self._stopping = False
        self._deadlines = Deadlines()

    async def run(self) -> None:
        """Pop and run jobs until cancelled; then shut down gracefully."""
        helpers = [
            asyncio.create_task(self._report_lengths(), name=f"gauge {self.queue.name}"),
            asyncio.create_task(self._renew_leases(), name=f"leases {self.queue.name}"),
        ]
        acker = asyncio.create_task(self._ack_loop(), name=f"acks {self.queue.name}")
        try:
            with self._signals_cancel_me():
                await self._pop_loop()
        except asyncio.CancelledError:
            if not self._signalled:
                raise
            # Stopped by SIGTERM/SIGINT: a clean exit, not an error.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        finally:
            await self._shut_down(acker)
            self._deadlines.close()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

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
                delay = min(_STORE_RETRY_FIRST * 2**failures, _STORE_RETRY_MAX * 2.5)
                self.log.warning(
                    "queue %s: cannot pop (%s); retrying in %.2fs", self.queue.name, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            for job in jobs:
                self._held[id(job)] = job
            self._ready.extend(jobs)
            self._start_ready()

    async def _pop(self, limit: int) -> list[PersistedJob]:
        # The pop is shielded: if we are cancelled while the store is reserving a job, wait for
        # its answer and give the job back instead of leaving it reserved until its lease ends.
        if self._batch_pop is not None and limit > 1:
            popping: asyncio.Future[list[PersistedJob]] = asyncio.ensure_future(
                self._batch_pop.pop_many(limit)
            )
        else:
            popping = asyncio.ensure_future(_pop_one(self.driver))
        try:
            return await asyncio.shield(popping)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                timeout = getattr(self.driver, "pop_timeout", DEFAULT_POP_TIMEOUT)
                for job in await asyncio.wait_for(popping, timeout.total_seconds() + 5):
                    await self._release(job)
            raise

    def _room(self) -> int:
        """How many more jobs to pop: free slots plus the prefetch, within the jobs held.

        Finished jobs free their slot before their ack, so popping overlaps acking, and
        prefetched jobs wait leased in `_ready`, so popping overlaps running; the jobs held
        (prefetched, running or awaiting an ack) stay bounded all the same.
        """
        parallelism, prefetch = self.settings.parallelism, self.settings.prefetch
        wanted = parallelism + prefetch - len(self._in_flight) - len(self._ready)
        return min(wanted, 2 * parallelism + prefetch - len(self._held))

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
            self.log.error("queue %s: job task crashed", self.queue.name, exc_info=task.exception())

    # --- running one job -------------------------------------------------------------------

    async def _run_job(self, job: PersistedJob) -> None:
        started = time.perf_counter()
        try:
            failure = await self._attempt(job)
        except asyncio.CancelledError:
            await self._release(job)
            self._held.pop(id(job), None)
            raise
        duration = time.perf_counter() - started
        if failure is None:  # the acker removes it from the store, with others, then observes
            self._acks.append((job, duration))
            self._acks_due.set()
            return
        try:
            self._observe(job, await self._on_failure(job, failure), duration)
        finally:
            self._held.pop(id(job), None)

    async def _attempt(self, job: PersistedJob) -> _Failure | None:
        received = self._decode(job)
        if isinstance(received, _Failure):
            return received
        task = cast("asyncio.Task[None]", asyncio.current_task())
        deadline = self._deadlines.watch(task, job.handle_timeout.total_seconds())
        try:
            await self.queue.job_dispatcher.dispatch(received)
        except asyncio.CancelledError as exc:
            if deadline.expired:
                deadline.expired = False
                if task.uncancel() == 0:  # only the handle timeout asked: the attempt fails
                    return _Failure(
                        HandleTimeout(f"listeners ran longer than {job.handle_timeout}")
                    )
                raise
            if _is_cancelling():
                raise
            # Raised by a listener, not asked for by us (a library leaking one): sending the job
            # back uncounted would run it again and again, so the attempt fails instead.
            return _Failure(exc)
        except BaseException as exc:  # SystemExit or KeyboardInterrupt from a listener fail the job
            return _Failure(exc)
        finally:
            self._deadlines.finish(deadline)
            if deadline.expired:  # the listener swallowed the cancellation: take it back
                task.uncancel()
        return None

    def _decode(self, job: PersistedJob) -> ReceivedJob | _Failure:
        listened, payload_class = self.queue.payload_class(job.type)
        if not listened:
            return _Failure(NoListener(f"no listener subscribed to job type {job.type!r}"), False)
        try:
            data = self.queue.codec.decode(job.value, payload_class)
        except DecodeError as exc:
            return _Failure(exc, retryable=False)
        return ReceivedJob(job.type, data, job.id, job.attempts, job.max_attempts, job)

    async def _on_failure(self, job: PersistedJob, failure: _Failure) -> Outcome:
        error = failure.error
        job.last_error = f"{type(error).__name__}: {error}"
        extra = _job_extra(job)
        if failure.retryable and job.attempts < job.max_attempts:
            self.log.warning(
                "job %s (%s) attempt %d/%d failed, will retry: %s",
                job.id, job.type, job.attempts, job.max_attempts, job.last_error, extra=extra,
            )  # fmt: skip
            await self._emit(BeforeRetryPayload(error, job))
            job.backoff = self.settings.backoff(job.backoff)
            job.attempts += 1
            await self._settle(partial(self.driver.retry, job), f"job {job.id}")
            return "retried"
        self.log.error(
            "job %s (%s) failed after attempt %d/%d, moved to %s: %s",
            job.id, job.type, job.attempts, job.max_attempts, Channel.FAILED, job.last_error,
            extra=extra,
        )  # fmt: skip
        await self._emit(BeforeAbortPayload(error, job))
        await self._settle(partial(self.driver.fail, job), f"job {job.id}")
        return "failed"

    async def _emit(self, payload: BeforeRetryPayload | BeforeAbortPayload) -> None:
        try:
            await self.queue.event_dispatcher.dispatch(job_from(payload))
        except Exception:  # an event listener must never lose the job
            self.log.exception("queue %s: event listener failed", self.queue.name)

    def _observe(self, job: PersistedJob, outcome: Outcome, duration: float) -> None:
        if self.queue.metrics is not None:
            self.queue.metrics.observe(self.queue.name, job.type, outcome, duration)

    # --- leases and settling ---------------------------------------------------------------

    async def _renew_leases(self) -> None:
        """Renew the lease of every job held, every third of a lease, from this one task."""
        if self._renew_every is None:
            return
        while True:
            await asyncio.sleep(self._renew_every.total_seconds())
            jobs = list(self._held.values())
            if not jobs:
                continue
            try:
                if self._batch_leases is not None:
                    await self._batch_leases.renew_many(jobs)
                else:
                    await asyncio.gather(*(self._renew(job) for job in jobs))
            except Exception as exc:
                self.log.warning("queue %s: cannot renew leases: %s", self.queue.name, exc)

    async def _renew(self, job: PersistedJob) -> None:
        assert self._leases is not None
        try:
            await self._leases.renew(job)
        except Exception as exc:
            self.log.warning("job %s: cannot renew lease: %s", job.id, exc, extra=_job_extra(job))

    async def _ack_loop(self) -> None:
        """Ack finished jobs in batches until the consumer stops and nothing is left to ack."""
        while not (self._stopping and not self._acks):
            await self._acks_due.wait()
            self._acks_due.clear()
            while self._acks:
                batch, self._acks = self._acks[:_ACK_BATCH], self._acks[_ACK_BATCH:]
                await self._ack(batch)

    async def _ack(self, batch: list[tuple[PersistedJob, float]]) -> None:
        jobs = [job for job, _ in batch]
        if self._batch_leases is not None:
            await self._settle(partial(self._batch_leases.ack_many, jobs), f"{len(jobs)} jobs")
        else:
            acks = (self._settle(partial(self.driver.ack, job), f"job {job.id}") for job in jobs)
            await asyncio.gather(*acks)
        debug = self.log.isEnabledFor(logging.DEBUG)
        for job, duration in batch:
            self._held.pop(id(job), None)
            self._observe(job, "processed", duration)
            if debug:
                self.log.debug(
                    "job %s (%s) attempt %d/%d done in %.3fs",
                    job.id, job.type, job.attempts, job.max_attempts, duration,
                    extra=_job_extra(job),
                )  # fmt: skip
        self._slot_freed.set()

    async def _settle(self, operation: Callable[[], Awaitable[None]], what: str) -> None:
        """Apply ack/retry/fail, retrying while the store is briefly unreachable.

        Gives up after about a lease: by then the lease has expired and the store itself
        hands the job out again, so nothing is lost either way.
        """
        delay, deadline = _STORE_RETRY_FIRST, time.monotonic() + self._give_up_seconds
        while True:
            try:
                await operation()
                return
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    self.log.error("%s: gave up settling (%s); leases will expire", what, exc)
                    return
                self.log.warning("%s: cannot settle (%s); retrying", what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _STORE_RETRY_MAX)

    async def _release(self, job: PersistedJob) -> None:
        try:
            if self._leases is not None:
                await self._leases.release(job)
            else:  # a driver without leases: send it back due now, attempts unchanged
                job.backoff = timedelta(0)
                await self.driver.retry(job)
        except Exception as exc:
            self.log.warning(
                "job %s: cannot release (%s); its lease will expire", job.id, exc,
                extra=_job_extra(job),
            )  # fmt: skip

    # --- shutdown, gauge, signals ----------------------------------------------------------

    async def _shut_down(self, acker: asyncio.Task[None]) -> None:
        prefetched, self._ready = list(self._ready), deque()
        for job in prefetched:  # never started: back to waiting at once, for other workers
            await self._release(job)
            self._held.pop(id(job), None)
        if self._in_flight:
            grace = self.settings.shutdown_grace.total_seconds()
            self.log.info("queue %s: waiting up to %.0fs for %d jobs", self.queue.name, grace,
                          len(self._in_flight))  # fmt: skip
            _, unfinished = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        self._stopping = True  # the acker flushes what is left, then returns
        self._acks_due.set()
        await acker

    async def _report_lengths(self) -> None:
        gauge = self.queue.gauge
        if gauge is None:
            return
        while True:
            try:
                info = await self.driver.info()
                for channel, count in info.as_dict().items():
                    set_gauge(gauge, count, queue=self.queue.name, channel=channel)
            except Exception as exc:
                self.log.warning("queue %s: cannot read queue lengths: %s", self.queue.name, exc)
            await asyncio.sleep(self.settings.gauge_interval.total_seconds())

    @contextlib.contextmanager
    def _signals_cancel_me(self) -> Any:
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
            self.log.info("queue %s: %s received, shutting down", self.queue.name, sig.name)
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


def _is_cancelling() -> bool:
    """Return whether someone asked the current task to stop (shutdown, a timeout)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def _pop_one(driver: Driver) -> list[PersistedJob]:
    return [await driver.pop()]


def _job_extra(job: PersistedJob) -> dict[str, object]:
    """The fields every job log record carries: id, type and attempt."""
    return {"job_id": job.id, "job_type": job.type, "attempt": job.attempts}
