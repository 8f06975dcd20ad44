"""InProcessDriver: the Driver contract kept in memory, for tests and examples. Not durable.

One lock guards the state: `push_sync` comes from other threads while pops and settles run on
an event loop. No await comes while it is held, so a loop never waits on it for long.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from corequeue.drivers.base import (
    DEFAULT_LEASE,
    DEFAULT_POP_TIMEOUT,
    LEASE_EXPIRED,
    THROUGHPUT_HISTORY,
    Channel,
    Clock,
    GroupCounts,
    JobView,
    QueueInfo,
    SystemClock,
    Throughput,
    WorkerInfo,
    check_listing,
    check_pop_limit,
    due_ms,
    instant_of_ms,
    interval_of,
    parse_channel,
    reloadable,
)
from corequeue.drivers.finished import Pause, wait_finished
from corequeue.drivers.flow import FlowState, Gate
from corequeue.drivers.wakeup import Bell
from corequeue.errors import InvalidOption, QueueEmpty
from corequeue.job import PersistedJob, new_token, to_ms
from corequeue.limits import HeldBack, Limits


class InProcessDriver:
    """Keeps every channel in this process's memory: fast, and gone when the process ends.

    Args:
        pop_interval: How long `pop()` waits for a job before raising QueueEmpty (the driver's
            `pop_timeout`).
        lease: How long a popped job stays reserved without a renewal.
        clock: Source of time; tests pass a FakeClock.

    Example:
        >>> queue = Queue(InProcessDriver())  # doctest: +SKIP
    """

    def __init__(
        self,
        pop_interval: timedelta = DEFAULT_POP_TIMEOUT,
        *,
        lease: timedelta = DEFAULT_LEASE,
        clock: Clock | None = None,
    ) -> None:
        self.pop_timeout = pop_interval
        self.lease = lease
        self._clock = clock or SystemClock()
        self._pending: dict[str, _Pending] = {}
        # Pending jobs are found through two heaps whose stale entries (cancelled, popped or
        # pushed again since: another sequence number) are skipped: `_heap` by due time, and
        # `_ready` for the due ones by priority, then due time (see `_take_due_entry`).
        self._heap: list[tuple[int, int, str]] = []  # (due ms, sequence, id)
        self._ready: list[tuple[int, int, int, str]] = []  # (-priority, due ms, sequence, id)
        self._sequence = itertools.count()
        self._paused = False
        self._limits = Limits()
        self._next_start_us: dict[str, int] = {}  # rate scope -> next allowed start
        self._held: Counter[HeldBack] = Counter()
        self._reserved: dict[str, _Reservation] = {}
        self._parked: dict[Channel, dict[str, PersistedJob]] = {
            Channel.FAILED: {},
            Channel.TIMEOUT: {},
            Channel.COMPLETED: {},
        }
        # id -> ms: when a failed or timeout job was parked; when a completed one is pruned.
        self._since: dict[str, int] = {}
        self._pushed = Bell()
        self._finished = Bell()
        self._slots: dict[str, int] = {}  # periodic schedule name -> last enqueued slot, ms
        self._workers: dict[str, WorkerInfo] = {}
        self._throughput: dict[int, list[int]] = {}  # interval start ms -> the three counts
        self._lock = threading.RLock()

    @property
    def pop_interval(self) -> timedelta:
        """The constructor's name for `pop_timeout`."""
        return self.pop_timeout

    @property
    def clock(self) -> Clock:
        """The clock due times are decided by: the one given, or the machine's."""
        return self._clock

    async def push(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting`, or in `delayed` until `delay` has passed.

        Raises:
            InvalidOption: For any option: this driver takes none.
        """
        _refuse(options)
        with self._lock:
            self._push(job, delay)

    def push_sync(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting` or `delayed` from any thread; wake pops on any event loop.

        Raises:
            InvalidOption: For any option: this driver takes none.
        """
        _refuse(options)
        with self._lock:
            self._push(job, delay)

    async def push_many(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], **options: Any
    ) -> None:
        """Push every `(job, delay)` pair.

        Raises:
            InvalidOption: For any option: this driver takes none.
        """
        _refuse(options)
        with self._lock:
            for job, delay in jobs:
                self._push(job, delay)

    @property
    def limits(self) -> Limits:
        """The limits every pop of this driver enforces."""
        return self._limits

    def set_limits(self, limits: Limits | None) -> None:
        """Enforce `limits` at every pop of this driver from now on (None: none)."""
        self._limits = limits or Limits()

    def held_back(self) -> dict[HeldBack, int]:
        """Return how many times each limit held a due job back in this driver's pops."""
        with self._lock:
            return dict(self._held)

    async def pause(self) -> None:
        """Hand out no job until `resume()`; pushes are still accepted."""
        with self._lock:
            self._paused = True

    async def resume(self) -> None:
        """Hand out jobs again after `pause()`."""
        with self._lock:
            self._paused = False
        self._pushed.ring()

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        with self._lock:
            return self._paused

    async def pop(self) -> PersistedJob:
        """Reserve the next due job under a fresh token; raise QueueEmpty after the timeout."""
        jobs = await self.pop_many(1)
        return jobs[0]

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve up to `limit` due jobs (at least one) under one fresh token.

        Raises:
            QueueEmpty: No job fell due within `pop_timeout`.
            InvalidOption: `limit` is below 1.
        """
        check_pop_limit(limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pop_timeout.total_seconds()
        while True:
            seen = self._pushed.rings  # a push from another thread during the look is not missed
            now_us = self._clock.now_us()
            now = now_us // 1_000  # rounded down: what is due at `now` is due at `now_us`
            with self._lock:
                self._recover_expired(now)
                jobs: list[PersistedJob] = []
                gate = None if self._limits.is_empty else self._gate(now_us)
                if not self._paused:
                    lease_end = due_ms(now_us, self.lease)
                    jobs = self._reserve_due(now, lease_end, limit, gate)
                next_event_ms = self._next_event_ms(now, pending=not self._paused, gate=gate)
            if jobs:
                return jobs
            wait = min(deadline - loop.time(), next_event_ms / 1000)
            if wait <= 0:
                raise QueueEmpty()
            await self._pushed.wait(seen, wait)

    async def ack(self, job: PersistedJob) -> bool:
        """Remove a reserved job (or keep it in `completed`); False when its token is stale."""
        return not await self.ack_many([job])

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Ack every job still reserved under its token; return the stale ones."""
        now = self._clock.now_us()
        with self._lock:
            stale = [job for job in jobs if not self._ack(job, now)]
        self._finished.ring()
        return stale

    async def fail(self, job: PersistedJob) -> bool:
        """Move a reserved job to `failed`; False (nothing changed) when its token is stale."""
        with self._lock:
            if self._settle(job) is None:
                return False
            self._park(Channel.FAILED, replace(job, token=None), self._clock.now_ms())
        self._finished.ring()
        return True

    async def retry(self, job: PersistedJob) -> bool:
        """Move a reserved job to `delayed` for its backoff; False when its token is stale."""
        with self._lock:
            if self._settle(job) is None:
                return False
            self._enqueue(replace(job, token=None), due_ms(self._clock.now_us(), job.backoff))
            return True

    async def renew(self, job: PersistedJob) -> bool:
        """Extend the lease of a reserved job; False when the lease is lost."""
        with self._lock:
            return self._renew(job)

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Extend the leases of several reserved jobs; return those whose lease is lost."""
        with self._lock:
            return [job for job in jobs if not self._renew(job)]

    async def release(self, job: PersistedJob) -> bool:
        """Put a reserved job back in `waiting` as stored, without counting an attempt.

        Returns False, changing nothing, when the caller's token is stale.
        """
        with self._lock:
            held = self._settle(job)
            if held is None:
                return False
            self._enqueue(held.job, self._clock.now_ms())
            return True

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job, or record a cancel request for a reserved one."""
        with self._lock:
            if self._pending.pop(job_id, None) is not None:
                return True
            held = self._reserved.get(job_id)
            if held is None:
                return False
            self._reserved[job_id] = held._replace(cancel=True)
            return True

    async def reload(self, channel: Channel | str) -> int:
        """Move every job of `failed` or `timeout` back to `waiting`."""
        parked = self._parked[reloadable(channel)]
        now = self._clock.now_ms()
        with self._lock:
            moved = list(parked.values())
            parked.clear()
            for job in moved:
                self._since.pop(job.id, None)
                self._enqueue(job, now)
        return len(moved)

    async def flush(self, channel: Channel | str) -> None:
        """Delete every job of `channel`."""
        parsed = parse_channel(channel)
        now = self._clock.now_ms()
        with self._lock:
            if parsed in self._parked:
                for job_id in self._parked[parsed]:
                    self._since.pop(job_id, None)
                self._parked[parsed].clear()
            elif parsed is Channel.RESERVED:
                self._reserved.clear()
            else:
                delayed = parsed is Channel.DELAYED
                pending = self._pending.items()
                for job_id in [i for i, entry in pending if (entry.due > now) == delayed]:
                    del self._pending[job_id]

    async def info(self) -> QueueInfo:
        """Return the number of jobs in each channel."""
        now = self._clock.now_ms()
        with self._lock:
            delayed = sum(1 for entry in self._pending.values() if entry.due > now)
            return QueueInfo(
                waiting=len(self._pending) - delayed,
                delayed=delayed,
                reserved=len(self._reserved),
                failed=len(self._parked[Channel.FAILED]),
                timeout=len(self._parked[Channel.TIMEOUT]),
                completed=len(self._parked[Channel.COMPLETED]),
            )

    async def wait_finished(self, job_id: str, wait: timedelta | None) -> JobView | None:
        """Return job `job_id` once finished, or where it is after `wait`; None if unknown."""
        return await wait_finished(lambda: self.get_job(job_id), Pause(self._finished, None), wait)

    async def prune(self, failed_retention: timedelta | None, limit: int) -> int:
        """Delete up to `limit` finished jobs past their retention (see `Driver.prune`)."""
        now = self._clock.now_ms()
        with self._lock:
            due = [
                job_id for job_id in self._parked[Channel.COMPLETED] if self._since[job_id] <= now
            ]
            if failed_retention is not None:
                parked_before = now - to_ms(failed_retention)
                for channel in (Channel.FAILED, Channel.TIMEOUT):
                    due.extend(i for i in self._parked[channel] if self._since[i] <= parked_before)
            due = sorted(due, key=self._since.__getitem__)[:limit]
            for job_id in due:
                self._unpark(job_id)
        return len(due)

    async def enqueue_slot(self, name: str, slot_ms: int, job: PersistedJob) -> bool:
        """Advance schedule `name` to `slot_ms` and push `job`, unless it is to come or taken.

        The check and the change happen under the driver's lock with no await between them,
        so no caller can interleave (see `Driver.enqueue_slot`): a slot in the clock's future,
        or not after the last one, changes nothing.
        """
        if slot_ms * 1_000 > self._clock.now_us():
            return False
        with self._lock:
            last = self._slots.get(name)
            if last is not None and last >= slot_ms:
                return False
            self._slots[name] = slot_ms
            self._push(job, timedelta(0))
            return True

    async def schedule_slots(self) -> dict[str, int]:
        """Return the last enqueued slot of every schedule, by name."""
        with self._lock:
            return dict(self._slots)

    async def forget_schedule(self, name: str) -> bool:
        """Delete the last slot of schedule `name`; return whether there was one."""
        with self._lock:
            return self._slots.pop(name, None) is not None

    async def beat(self, worker: WorkerInfo) -> None:
        """Record a heartbeat of `worker` now; forget workers silent for a lease."""
        now = self._clock.now_ms()
        with self._lock:
            self._workers[worker.id] = replace(worker, last_seen=instant_of_ms(now))
            horizon = instant_of_ms(now - to_ms(self.lease))
            for silent in [w.id for w in self._workers.values() if w.last_seen < horizon]:
                del self._workers[silent]

    async def forget_worker(self, worker_id: str) -> None:
        """Delete the heartbeat record of `worker_id`."""
        with self._lock:
            self._workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerInfo]:
        """Return the workers that beat within one lease of now, by id."""
        horizon = instant_of_ms(self._clock.now_ms() - to_ms(self.lease))
        with self._lock:
            alive = [w for w in self._workers.values() if w.last_seen >= horizon]
        return sorted(alive, key=lambda worker: worker.id)

    async def count_finished(self, processed: int, retried: int, failed: int) -> None:
        """Add finished attempts to the current interval's counters; forget day-old ones."""
        now = self._clock.now_ms()
        with self._lock:
            counts = self._throughput.setdefault(interval_of(now), [0, 0, 0])
            for index, count in enumerate((processed, retried, failed)):
                counts[index] += count
            oldest = now - to_ms(THROUGHPUT_HISTORY)
            for start in [start for start in self._throughput if start < oldest]:
                del self._throughput[start]

    async def throughput(self, since: datetime) -> list[Throughput]:
        """Return the counters of the intervals starting at or after `since`, oldest first."""
        with self._lock:
            counts = sorted(self._throughput.items())
        return [
            Throughput(instant_of_ms(start), *values)
            for start, values in counts
            if instant_of_ms(start) >= since
        ]

    async def close(self) -> None:
        """Nothing to release."""

    async def list_jobs(
        self,
        channel: Channel | str,
        *,
        offset: int = 0,
        limit: int = 50,
        job_type: str | None = None,
    ) -> list[JobView]:
        """Return up to `limit` jobs of `channel` after `offset` (see InspectDriver)."""
        parsed = check_listing(channel, offset, limit)
        with self._lock:
            views = self._views(parsed, self._clock.now_ms())
        matching = [view for view in views if job_type is None or view.job.type == job_type]
        return matching[offset : offset + limit]

    async def get_job(self, job_id: str) -> JobView | None:
        """Return the job with id `job_id` wherever it is, or None."""
        now = self._clock.now_ms()
        with self._lock:
            for channel in Channel:
                for view in self._views(channel, now):
                    if view.job.id == job_id:
                        return view
        return None

    async def delete_job(self, job_id: str) -> bool:
        """Delete a waiting, delayed, failed, timeout or completed job; return whether it was."""
        with self._lock:
            if self._pending.pop(job_id, None) is not None:
                return True
            return self._unpark(job_id) is not None

    async def retry_job(self, job_id: str) -> bool:
        """Move one failed or timeout job back to `waiting`; return whether it was there."""
        with self._lock:
            for channel in (Channel.FAILED, Channel.TIMEOUT):
                job = self._parked[channel].pop(job_id, None)
                if job is not None:
                    self._since.pop(job_id, None)
                    self._enqueue(job, self._clock.now_ms())
                    return True
        return False

    async def group_counts(self) -> dict[str, GroupCounts]:
        """Return the waiting and reserved jobs of every group that has some."""
        now = self._clock.now_ms()
        waiting: Counter[str] = Counter()
        reserved: Counter[str] = Counter()
        with self._lock:
            for entry in self._pending.values():
                if entry.due <= now and entry.job.group is not None:
                    waiting[entry.job.group] += 1
            for held in self._reserved.values():
                if held.job.group is not None:
                    reserved[held.job.group] += 1
        return {
            group: GroupCounts(waiting[group], reserved[group])
            for group in sorted(waiting.keys() | reserved.keys())
        }

    def _views(self, channel: Channel, now: int) -> list[JobView]:
        """Return every job of `channel` in channel order."""
        if channel is Channel.COMPLETED:
            kept = sorted(self._parked[channel].values(), key=lambda job: self._since[job.id])
            return [
                JobView(replace(job), channel, instant_of_ms(self._since[job.id])) for job in kept
            ]
        if channel in self._parked:
            return [JobView(replace(job), channel) for job in self._parked[channel].values()]
        if channel is Channel.RESERVED:
            held = sorted(self._reserved.values(), key=lambda reservation: reservation.expiry_ms)
            return [
                JobView(replace(entry.job), channel, instant_of_ms(entry.expiry_ms))
                for entry in held
            ]
        delayed = channel is Channel.DELAYED
        entries = sorted(
            (entry for entry in self._pending.values() if (entry.due > now) == delayed),
            key=(lambda entry: (entry.due, entry.sequence))
            if delayed
            else (lambda entry: (-entry.job.priority, entry.due, entry.sequence)),
        )
        return [
            JobView(replace(entry.job), channel, instant_of_ms(entry.due) if delayed else None)
            for entry in entries
        ]

    def _renew(self, job: PersistedJob) -> bool:
        held = self._reserved.get(job.id)
        if held is None or not held.is_held_by(job):
            return False
        expiry_ms = due_ms(self._clock.now_us(), self.lease)
        if job.progress is not None:
            held.job.progress = job.progress
        self._reserved[job.id] = held._replace(expiry_ms=expiry_ms)
        job.cancel_requested = held.cancel
        return True

    def _push(self, job: PersistedJob, delay: timedelta) -> None:
        if job.id in self._pending or job.id in self._reserved:
            return
        self._unpark(job.id)
        self._enqueue(replace(job, token=None), due_ms(self._clock.now_us(), delay))

    def _enqueue(self, job: PersistedJob, due: int) -> None:
        sequence = next(self._sequence)
        self._pending[job.id] = _Pending(due, sequence, job)
        heapq.heappush(self._heap, (due, sequence, job.id))
        self._pushed.ring()

    def _is_current(self, job_id: str, sequence: int) -> bool:
        """Whether a heap entry still stands for the pending job (not cancelled or re-pushed)."""
        entry = self._pending.get(job_id)
        return entry is not None and entry.sequence == sequence

    def _take_due_entry(self, now: int) -> tuple[int, int, int, str] | None:
        """Take the ready entry of the due job of highest priority (earliest due among equals).

        The job stays in `_pending`: the caller reserves it, or pushes the entry back.
        """
        while self._heap and self._heap[0][0] <= now:
            due, sequence, job_id = heapq.heappop(self._heap)
            if self._is_current(job_id, sequence):
                priority = self._pending[job_id].job.priority
                heapq.heappush(self._ready, (-priority, due, sequence, job_id))
        while self._ready:
            entry = heapq.heappop(self._ready)
            if self._is_current(entry[3], entry[2]):
                return entry
        return None

    def _reserve_due(
        self, now: int, lease_end: int, limit: int, gate: Gate | None
    ) -> list[PersistedJob]:
        """Reserve up to `limit` jobs due at `now` under one new token; return the holder's copies.

        Their leases run out at `lease_end` (in milliseconds). With a `gate`, a due job starts
        only if the limits let it: jobs of a group at its limit are passed over (and stay
        waiting, in place) while later jobs of other groups start.
        """
        token = new_token()
        jobs: list[PersistedJob] = []
        passed_over: list[tuple[int, int, int, str]] = []
        while len(jobs) < limit and (entry := self._take_due_entry(now)) is not None:
            job = self._pending[entry[3]].job
            if gate is not None and not gate.queue_is_open():
                passed_over.append(entry)
                break
            if gate is not None and not gate.admit(job.group):
                passed_over.append(entry)
                continue
            del self._pending[job.id]
            self._reserved[job.id] = _Reservation(lease_end, job, token)
            jobs.append(replace(job, token=token))
        for entry in passed_over:
            heapq.heappush(self._ready, entry)
        if gate is not None:
            self._next_start_us.update(gate.changed_scopes())
            self._held.update(gate.held)
        return jobs

    def _gate(self, now_us: int) -> Gate:
        """Return a gate over this store's reserved jobs and rate state."""
        by_group = Counter(
            held.job.group for held in self._reserved.values() if held.job.group is not None
        )
        state = FlowState(len(self._reserved), by_group, dict(self._next_start_us))
        return Gate(self._limits, state, now_us)

    def _ack(self, job: PersistedJob, now_us: int) -> bool:
        """Remove a reserved job, or keep it in `completed`; False (nothing changed) when stale."""
        if self._settle(job) is None:
            return False
        if job.keep_result is not None and job.keep_result > timedelta(0):
            self._park(Channel.COMPLETED, replace(job, token=None), due_ms(now_us, job.keep_result))
        return True

    def _park(self, channel: Channel, job: PersistedJob, since_ms: int) -> None:
        self._unpark(job.id)
        self._parked[channel][job.id] = job
        self._since[job.id] = since_ms

    def _unpark(self, job_id: str) -> PersistedJob | None:
        """Take job `job_id` out of failed, timeout or completed; return it (None: not there)."""
        self._since.pop(job_id, None)
        for parked in self._parked.values():
            job = parked.pop(job_id, None)
            if job is not None:
                return job
        return None

    def _settle(self, job: PersistedJob) -> _Reservation | None:
        """End the reservation `job` holds and return it; None (nothing changed) when stale.

        A freed reservation may let a job held back by a concurrency limit start: pops wake.
        """
        held = self._reserved.get(job.id)
        if held is None or not held.is_held_by(job):
            return None
        del self._reserved[job.id]
        if self._limits.limits_concurrency:
            self._pushed.ring()
        return held

    def _next_event_ms(self, now: int, *, pending: bool, gate: Gate | None) -> int:
        """Milliseconds until the next delayed job is due or the next lease runs out.

        A paused queue (`pending` False) waits for leases only: `resume()` wakes its pops.
        Jobs held back by a limit wait for a settle (which rings) or for a rate to open.
        """
        held = gate is not None and bool(gate.held)
        times = (
            [e.due for e in self._pending.values() if e.due > now or not held] if pending else []
        )
        if gate is not None and (opens_us := gate.next_open_us()) is not None:
            times.append(-(-opens_us // 1000))
        times.extend(held.expiry_ms for held in self._reserved.values())
        return max(min(times, default=now + 3_600_000) - now, 1)

    def _recover_expired(self, now: int) -> None:
        """Take back the jobs whose lease ran out: their holders' tokens go stale."""
        expired = [held.job for held in self._reserved.values() if held.expiry_ms <= now]
        for job in expired:
            del self._reserved[job.id]
            job.last_error = LEASE_EXPIRED
            if job.attempts < job.max_attempts:
                job.attempts += 1
                self._enqueue(job, now)
            else:
                self._park(Channel.TIMEOUT, job, now)
        if expired:
            self._finished.ring()


class _Pending(NamedTuple):
    """A waiting or delayed job: when it is due (ms), its push's sequence number, the job."""

    due: int
    sequence: int
    job: PersistedJob


class _Reservation(NamedTuple):
    """A reserved job as stored: its lease expiry, the stored envelope and the pop's token."""

    expiry_ms: int
    job: PersistedJob
    token: str
    cancel: bool = False

    def is_held_by(self, job: PersistedJob) -> bool:
        """Whether `job` is the copy this reservation's pop handed out."""
        return job.token is not None and job.token == self.token


def _refuse(options: dict[str, Any]) -> None:
    """Raise InvalidOption naming `options`, if any: this driver takes no push options."""
    if options:
        names = ", ".join(sorted(options))
        raise InvalidOption(f"InProcessDriver takes no push options: {names}")
