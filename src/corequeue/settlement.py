"""The store side of a consumer: hold popped jobs, renew their leases, ack, retry, fail, release.

Every job a consumer popped stays reserved under a lease in the store until it is settled. One
task renews all those leases every third of a lease; one task acks finished jobs in batches (one
round trip for many), so a job leaves the store only after its listeners finished. Each settle
is fenced by the job's reservation token: when the store says the reservation is no longer ours
(the lease ran out and the job went on without us), nothing changes and the consumer logs it.
A settle that fails because the store is briefly unreachable is retried for about a lease; by
then the lease has expired and the store hands the job out again, so nothing is lost either way.

No method here raises (except cancellation): what goes wrong is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from corequeue.drivers.base import Driver
from corequeue.guard import Guard, Logger
from corequeue.job import PersistedJob
from corequeue.metrics import Outcome

T = TypeVar("T")

RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 2.0
ACK_BATCH = 1000
"""Most jobs one `ack_many` call removes."""

Observe = Callable[[PersistedJob, Outcome, float], None]


class Settlement:
    """Holds the jobs a consumer popped until the store has settled each one.

    Args:
        driver: The store.
        name: The queue's name, for logs.
        log: Where to log.
        observe: Called once per acked job with its handler duration (already guarded).
        on_settled: Called whenever held jobs were let go (a slot for more jobs may be free).
        on_cancel: Called with each held job a renewal says `cancel(id)` asked to stop.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        name: str,
        log: Logger,
        observe: Observe,
        on_settled: Callable[[], None],
        on_cancel: Callable[[PersistedJob], None] = lambda job: None,
    ) -> None:
        self.driver = driver
        self.name = name
        self.log = log
        self._observe = observe
        self._on_settled = on_settled
        self._on_cancel = on_cancel
        self._cancelling: set[int] = set()  # held jobs already told to stop
        lease = driver.lease
        self._renew_every = lease / 3
        self._give_up_seconds = max(lease.total_seconds(), 1.0)
        # Keyed by object identity: the same id may be popped again after a lost lease while
        # the first run still goes on.
        self._held: dict[int, PersistedJob] = {}
        self._lost: set[int] = set()  # held jobs whose lease is gone: not renewed any more
        self._acks: list[tuple[PersistedJob, float]] = []
        self._acks_due = asyncio.Event()
        self._stopping = False

    @property
    def held_count(self) -> int:
        """Jobs popped and not settled yet (prefetched, running or waiting for their ack)."""
        return len(self._held)

    def hold(self, job: PersistedJob) -> None:
        """Keep `job`'s lease renewed until it is settled."""
        self._held[id(job)] = job

    def ack_later(self, job: PersistedJob, duration_seconds: float) -> None:
        """Queue a finished job for the next batch ack."""
        self._acks.append((job, duration_seconds))
        self._acks_due.set()

    async def retry(self, job: PersistedJob) -> None:
        """Send a failed job back to `delayed` for its backoff (its envelope updated)."""
        await self._settle_one(job, self.driver.retry, "retried")

    async def fail(self, job: PersistedJob) -> None:
        """Park a job in `failed` with its `last_error`."""
        await self._settle_one(job, self.driver.fail, "failed")

    async def release(self, job: PersistedJob) -> None:
        """Put a job back in `waiting` without counting an attempt; no settle retries."""
        try:
            if not await self.driver.release(job):
                self._stale(job, "released")
        except Exception as exc:
            self.log.warning(
                "job %s: cannot release (%s); its lease will expire", job.id, exc,
                extra=job_extra(job),
            )  # fmt: skip
        finally:
            self._let_go(job)

    # --- the two side tasks ----------------------------------------------------------------

    async def ack_loop(self) -> None:
        """Ack finished jobs in batches until `stop()` and nothing is left to ack."""
        while not (self._stopping and not self._acks):
            await self._acks_due.wait()
            self._acks_due.clear()
            await self.ack_pending()

    async def ack_pending(self) -> None:
        """Ack every finished job queued so far."""
        while self._acks:
            batch, self._acks = self._acks[:ACK_BATCH], self._acks[ACK_BATCH:]
            await self._ack(batch)

    def stop(self) -> None:
        """Let the ack loop return once it has acked what is queued."""
        self._stopping = True
        self._acks_due.set()

    async def renew_loop(self) -> None:
        """Renew the lease of every held job, every third of a lease, from this one task."""
        while True:
            await asyncio.sleep(self._renew_every.total_seconds())
            await self.renew_held()

    async def renew_held(self) -> None:
        """Renew the leases held now; stop renewing (and log) those the store says are lost."""
        jobs = [job for key, job in self._held.items() if key not in self._lost]
        if not jobs:
            return
        try:
            lost = await self.driver.renew_many(jobs)
        except Exception as exc:
            self.log.warning("queue %s: cannot renew leases: %s", self.name, exc)
            return
        for job in jobs:
            if job.cancel_requested and id(job) not in self._cancelling and id(job) in self._held:
                self._cancelling.add(id(job))
                self.log.info("job %s (%s): cancel requested; stopping it", job.id, job.type,
                              extra=job_extra(job))  # fmt: skip
                self._on_cancel(job)
        for job in lost:
            if id(job) in self._held:
                self._lost.add(id(job))
            self.log.warning(
                "job %s (%s) attempt %d: lease lost; the store may hand the job to another "
                "worker, and this run's outcome will not be recorded",
                job.id, job.type, job.attempts, extra=job_extra(job),
            )  # fmt: skip

    # --- plumbing --------------------------------------------------------------------------

    async def _ack(self, batch: list[tuple[PersistedJob, float]]) -> None:
        jobs = [job for job, _ in batch]
        stale = await self._with_retries(
            lambda: self.driver.ack_many(jobs), f"queue {self.name}: ack of {len(jobs)} jobs"
        )
        for job in stale or ():
            self._stale(job, "acked")
        debug = self.log.isEnabledFor(logging.DEBUG)
        for job, duration in batch:
            self._held.pop(id(job), None)
            self._lost.discard(id(job))
            self._cancelling.discard(id(job))
            self._observe(job, "processed", duration)
            if debug:
                self.log.debug(
                    "job %s (%s) attempt %d/%d done in %.3fs",
                    job.id, job.type, job.attempts, job.max_attempts, duration,
                    extra=job_extra(job),
                )  # fmt: skip
        self._on_settled()

    async def _settle_one(
        self,
        job: PersistedJob,
        operation: Callable[[PersistedJob], Awaitable[bool]],
        done: str,
    ) -> None:
        try:
            settled = await self._with_retries(lambda: operation(job), f"job {job.id}")
            if settled is False:
                self._stale(job, done)
        finally:
            self._let_go(job)

    async def _with_retries(self, operation: Callable[[], Awaitable[T]], what: str) -> T | None:
        """Run a settle, retrying while the store is briefly unreachable; None if given up."""
        delay, deadline = RETRY_FIRST_SECONDS, time.monotonic() + self._give_up_seconds
        while True:
            try:
                return await operation()
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    self.log.error("%s: gave up settling (%s); leases will expire", what, exc)
                    return None
                self.log.warning("%s: cannot settle (%s); retrying", what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _stale(self, job: PersistedJob, done: str) -> None:
        self.log.warning(
            "job %s (%s) attempt %d: not %s: the reservation is no longer this worker's "
            "(its lease ran out and the job went on without it)",
            job.id, job.type, job.attempts, done, extra=job_extra(job),
        )  # fmt: skip

    def _let_go(self, job: PersistedJob) -> None:
        self._held.pop(id(job), None)
        self._lost.discard(id(job))
        self._cancelling.discard(id(job))
        self._on_settled()


def job_extra(job: PersistedJob) -> dict[str, object]:
    """The fields every job log record carries: id, type and attempt."""
    return {"job_id": job.id, "job_type": job.type, "attempt": job.attempts}


def guarded_observer(guard: Guard, observe: Callable[..., None] | None, name: str) -> Observe:
    """Return an `Observe` that reports to a JobMetrics `observe`, never raising."""

    def report(job: PersistedJob, outcome: Outcome, duration: float) -> None:
        if observe is not None:
            guard.call(observe, name, job.type, outcome, duration)

    return report
