"""The Driver contract: durable storage for one named queue and its five channels.

A driver stores persisted jobs and moves them between channels atomically. It never decides
retries, backoff, events or metrics: the queue does that once, for every driver.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from corequeue.errors import InvalidOption
from corequeue.job import PersistedJob
from corequeue.limits import HeldBack, Limits

DEFAULT_LEASE = timedelta(seconds=30)
"""How long a popped job stays reserved without a renewal before it counts as abandoned."""

DEFAULT_POP_TIMEOUT = timedelta(seconds=1)
"""How long `pop()` waits for a job before raising QueueEmpty."""


class Channel(StrEnum):
    """The channels of a queue: the five of every queue, and `completed` for kept results."""

    WAITING = "waiting"
    DELAYED = "delayed"
    RESERVED = "reserved"
    FAILED = "failed"
    TIMEOUT = "timeout"
    COMPLETED = "completed"


FINISHED = (Channel.COMPLETED, Channel.FAILED, Channel.TIMEOUT)
"""The channels a job ends in: `result()` stops waiting when its job is in one of them."""


_STORED_KEYS = (Channel.WAITING, Channel.DELAYED, Channel.RESERVED, Channel.FAILED, Channel.TIMEOUT)

RELOADABLE = (Channel.FAILED, Channel.TIMEOUT)
"""The channels `reload()` may move back to `waiting`."""


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """How many jobs each channel of a queue holds."""

    waiting: int = 0
    delayed: int = 0
    reserved: int = 0
    failed: int = 0
    timeout: int = 0
    completed: int = 0

    @property
    def pending(self) -> int:
        """Jobs still to run: waiting, delayed and reserved."""
        return self.waiting + self.delayed + self.reserved

    def as_dict(self) -> dict[str, int]:
        """Return the counts keyed by channel name."""
        return {channel.value: getattr(self, channel.value) for channel in Channel}


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process consuming a queue, as its last heartbeat described it.

    Attributes:
        id: Unique per consumer run (`<hostname>:<pid>:<random>`).
        hostname: The machine it runs on.
        pid: Its process id there.
        started_at: When it started consuming (aware, UTC).
        last_seen: Its last heartbeat, on the store's clock (aware, UTC).
        running: How many jobs it was running then.
    """

    id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen: datetime
    running: int = 0


THROUGHPUT_INTERVAL = timedelta(seconds=30)
"""Width of one interval of the store's throughput counters."""

THROUGHPUT_HISTORY = timedelta(days=1)
"""How long the store keeps throughput counters; older intervals are deleted."""


@dataclass(frozen=True, slots=True)
class Throughput:
    """Attempts finished across every worker of a queue in one interval, by outcome.

    Attributes:
        start: The interval's start (aware, UTC); intervals are THROUGHPUT_INTERVAL wide,
            aligned to the Unix epoch.
        processed: Attempts that succeeded.
        retried: Attempts that failed and were sent back for another.
        failed: Attempts that failed for good.
    """

    start: datetime
    processed: int = 0
    retried: int = 0
    failed: int = 0


def interval_of(now_ms: int) -> int:
    """Return the start (ms since the epoch) of the throughput interval holding `now_ms`.

    Example:
        >>> interval_of(61_000)
        60000
    """
    width = THROUGHPUT_INTERVAL // timedelta(milliseconds=1)
    return now_ms - now_ms % width


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """The store key (or key suffix) of each channel of one queue.

    Example:
        >>> ChannelConfig.for_queue("default").waiting
        '{app:env:default}:waiting'
    """

    waiting: str
    delayed: str
    reserved: str
    failed: str
    timeout: str

    @classmethod
    def for_queue(cls, name: str, prefix: str = "app:env") -> ChannelConfig:
        """Return keys hash-tagged `{prefix:name}:<channel>`, so a queue lives in one slot."""
        tag = f"{{{prefix}:{name}}}"
        return cls(*(f"{tag}:{channel.value}" for channel in _STORED_KEYS))

    def key(self, channel: Channel) -> str:
        """Return the key of `channel`."""
        return str(getattr(self, channel.value))


@runtime_checkable
class Driver(Protocol):
    """Durable storage for one named queue and its five channels.

    Every method the consumer uses is here; a driver of your own can take the batch methods
    from `corequeue.drivers.derived.BatchFromSingle` and check itself with the contract suite
    in `corequeue.testing.contract`.

    Fencing: each pop hands out a fresh reservation token (`PersistedJob.token`) and stores it
    with the reservation. `ack`, `fail`, `retry`, `renew` and `release` (and their batch forms)
    act only while the job is reserved under that same token, compared in the same atomic step
    as the move; for a stale token (the lease ran out and the job was recovered, re-popped or
    re-dispatched since) they change nothing and say so in their result.
    """

    @property
    def lease(self) -> timedelta:
        """How long a popped job stays reserved without a renewal."""
        ...

    @property
    def pop_timeout(self) -> timedelta:
        """How long `pop()` waits for a job before raising QueueEmpty."""
        ...

    @property
    def clock(self) -> Clock | None:
        """The clock this driver decides due times by; None when it is the store server's.

        Redis and PostgreSQL constructed without a clock read their server's (Redis TIME,
        PostgreSQL clock_timestamp()): None. An embedded store (SQLite, in-process) has no
        server: it reads the clock it was given, or a SystemClock, and returns that. Periodic
        schedules compute their slots from this clock (the machine's when it is None), and
        `enqueue_slot` checks each slot against the store's.
        """
        ...

    async def push(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting`, or in `delayed` until `delay` has passed.

        A job whose id is already waiting, delayed or reserved is left as it is; one in
        `failed` or `timeout` is replaced. `options` are the driver's own (PostgreSQL takes
        `connection=` to join a transaction); a driver refuses options it does not know with
        InvalidOption.
        """
        ...

    async def push_many(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], **options: Any
    ) -> None:
        """Push every `(job, delay)` pair, in as few round trips as the store allows."""
        ...

    def push_sync(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """The same as `push`, from synchronous code; thread-safe.

        `Queue.dispatch_sync` calls it from any thread that runs no event loop (a web
        server's worker threads, a script), many at once. The corequeue drivers push with a
        synchronous client of their own, with no event loop; `BatchFromSingle` derives it for
        a driver of your own by running `push` on a private loop thread. Connections it opens
        are closed by `close()`.
        """
        ...

    async def pop(self) -> PersistedJob:
        """Reserve the next due job under a lease and a fresh token.

        Among due jobs the highest `priority` goes first; equal priorities go in due order
        (first in, first out for jobs due at once).

        Raises:
            QueueEmpty: No job fell due within the pop timeout.
        """
        ...

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve up to `limit` due jobs (at least one), oldest first, each under its own lease.

        Waits like `pop()` and raises QueueEmpty after the pop timeout.
        """
        ...

    async def ack(self, job: PersistedJob) -> bool:
        """Remove a reserved job: it is done. Return False (and change nothing) when stale.

        A job with a positive `keep_result` is not removed: it moves to `completed`, its
        envelope (with `result`) stored, until `keep_result` from now (its `due_at`); in the
        same atomic step as the token check.
        """
        ...

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Ack every job of `jobs` still reserved under its token; return the stale ones."""
        ...

    async def fail(self, job: PersistedJob) -> bool:
        """Move a reserved job to `failed`, storing its envelope (and `last_error`).

        Returns False, changing nothing, when the caller's token is stale.
        """
        ...

    async def retry(self, job: PersistedJob) -> bool:
        """Move a reserved job to `delayed` for `job.backoff`, storing its updated envelope.

        Returns False, changing nothing, when the caller's token is stale.
        """
        ...

    async def renew(self, job: PersistedJob) -> bool:
        """Extend the lease of a reserved job by `lease` from now; False when it is lost."""
        ...

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Extend the leases of every job of `jobs`; return those whose lease is lost.

        In the same step, for each job still held: store its `progress` when set, and set
        `cancel_requested` on the caller's copy when `cancel()` asked to stop that reservation.
        """
        ...

    async def release(self, job: PersistedJob) -> bool:
        """Put a reserved job back in `waiting` without counting an attempt (shutdown).

        Returns False, changing nothing, when the caller's token is stale.
        """
        ...

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job, or ask the holder of a reserved one to stop it.

        A request for a reserved job is recorded for its current reservation: the holder's
        next `renew_many` reports it (a later reservation of the same id does not see it).
        Returns whether a job was removed or a request recorded.
        """
        ...

    def set_limits(self, limits: Limits | None) -> None:
        """Enforce `limits` at every pop of this driver from now on (None: no limits).

        The limits are the popping worker's (`Queue(limits=...)` sets them); they are checked
        in the pop's atomic step against what the store holds for every worker: the reserved
        set (concurrency, per group too) and each rate's next allowed start, kept in the store
        on its clock. A job held back stays waiting as it is (no attempt counted) while later
        jobs of other groups start. Two workers with different limits each stop at their own:
        the strictest never starts a job past its limit, the loosest may fill up to its own.
        """
        ...

    def held_back(self) -> dict[HeldBack, int]:
        """Return how many times each limit (or a pause) held a due job back, in this driver."""
        ...

    async def pause(self) -> None:
        """Stop handing out jobs, for every worker sharing the store, until `resume()`.

        The flag lives in the store and pops read it in the same atomic step that reserves:
        a paused queue still accepts pushes, recovers expired leases, and lets reserved jobs
        be settled and renewed; its pops find nothing.
        """
        ...

    async def resume(self) -> None:
        """Hand out jobs again after `pause()` (waking pops waiting on this driver)."""
        ...

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        ...

    async def reload(self, channel: Channel | str) -> int:
        """Move every job of `failed` or `timeout` back to `waiting`; return how many moved.

        Raises:
            ValueError: for any other channel.
        """
        ...

    async def flush(self, channel: Channel | str) -> None:
        """Delete every job of `channel`."""
        ...

    async def info(self) -> QueueInfo:
        """Return the number of jobs in each channel."""
        ...

    async def wait_finished(self, job_id: str, wait: timedelta | None) -> JobView | None:
        """Return job `job_id` once it is in `completed`, `failed` or `timeout`.

        Waits up to `wait` (None: no limit) without polling in a tight loop, and notices
        jobs finished by other processes; when the time is up, returns the job where it is.

        Returns:
            The job's view, or None when the store has no job with that id (never dispatched,
            acked without a kept result, or pruned).
        """
        ...

    async def prune(self, failed_retention: timedelta | None, limit: int) -> int:
        """Delete up to `limit` finished jobs past their retention; return how many went.

        `completed` jobs go once their `due_at` (the end of their `keep_result`) has passed;
        `failed` and `timeout` jobs once parked longer than `failed_retention` (None: kept).
        One bounded step of the store, oldest first: workers call it as they go.
        """
        ...

    async def enqueue_slot(self, name: str, slot_ms: int, job: PersistedJob) -> bool:
        """Enqueue the job of periodic schedule `name`'s slot `slot_ms`, exactly once.

        One atomic step of the store (one script, one transaction; no await between the check
        and the change): if the slot is not in the future on the store's clock (never early:
        `slot_ms * 1000 <= now_us`, in microseconds) and the stored last slot of `name` is
        absent or less than `slot_ms`, store `slot_ms` as its last slot and push `job` due at
        once; otherwise change nothing. The push follows `push()`: a job whose id is already
        waiting, delayed or reserved is left as it is (the slot still advances: that id was
        enqueued), one in `failed` or `timeout` is replaced. A push that raises changes
        nothing, the slot included.

        Args:
            name: The schedule's name.
            slot_ms: The slot, in milliseconds since the Unix epoch.
            job: The slot's job (id `periodic:<name>:<slot_ms>`).

        Returns:
            Whether this call advanced the slot and pushed the job: False when the slot is
            still to come, or it (or a later one) was enqueued already.
        """
        ...

    async def schedule_slots(self) -> dict[str, int]:
        """Return the last enqueued slot (epoch milliseconds) of every schedule, by name."""
        ...

    async def forget_schedule(self, name: str) -> bool:
        """Delete the stored last slot of schedule `name`; return whether there was one.

        Its next `enqueue_slot` starts afresh: any slot not in the future is accepted.
        """
        ...

    async def beat(self, worker: WorkerInfo) -> None:
        """Record a heartbeat of `worker`: stored with `last_seen` set to the store's now.

        Workers beat once per renewal period (a third of a lease); a worker silent for a
        whole lease (three periods) no longer counts as alive, and a beat may delete such
        records (at most a bounded number per call).
        """
        ...

    async def forget_worker(self, worker_id: str) -> None:
        """Delete the heartbeat record of a worker that stopped cleanly."""
        ...

    async def workers(self) -> list[WorkerInfo]:
        """Return the workers whose last heartbeat is within one lease of now, by id."""
        ...

    async def count_finished(self, processed: int, retried: int, failed: int) -> None:
        """Add a worker's finished attempts to the counters of the current interval.

        The interval is the store's now's (see `interval_of`); counters older than
        THROUGHPUT_HISTORY are deleted as it goes, a bounded number per call.
        """
        ...

    async def throughput(self, since: datetime) -> list[Throughput]:
        """Return the counters of the intervals starting at or after `since`, oldest first.

        Intervals in which no attempt finished are left out.
        """
        ...

    async def close(self) -> None:
        """Release connections and threads; the driver is not used again."""
        ...


@dataclass(frozen=True, slots=True)
class JobView:
    """One stored job as an operator sees it: its envelope, its channel and its next moment.

    Attributes:
        job: The stored envelope (for a job recovered from an expired lease, with that attempt
            counted and `last_error` set, as a worker would receive it).
        channel: Where the job is now; a delayed job already due counts as waiting.
        due_at: When a delayed job falls due, when a reserved job's lease runs out, or when a
            completed job's result is pruned (aware, UTC); None in the other channels.
    """

    job: PersistedJob
    channel: Channel
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """How many jobs of one group wait and how many are reserved (see flow control)."""

    waiting: int = 0
    reserved: int = 0


MAX_LIST_LIMIT = 1000
"""Most jobs one `list_jobs()` call returns."""


@runtime_checkable
class InspectDriver(Driver, Protocol):
    """A driver that lets operators look at single jobs and act on them (the dashboard).

    Every corequeue driver implements it; a driver of your own may leave it out, and the
    dashboard then shows its counts only.
    """

    async def list_jobs(
        self,
        channel: Channel | str,
        *,
        offset: int = 0,
        limit: int = 50,
        job_type: str | None = None,
    ) -> list[JobView]:
        """Return up to `limit` jobs of `channel` after skipping `offset`, in channel order.

        Order: waiting in the order pops take them; delayed by due time and reserved by lease
        expiry, soonest first; failed and timeout oldest parked first.

        Args:
            channel: The channel to list.
            offset: How many matching jobs to skip (for pages).
            limit: Most jobs to return, from 1 to MAX_LIST_LIMIT.
            job_type: Only jobs of this type.

        Raises:
            InvalidOption: An unknown channel, a negative offset or a limit out of range.
        """
        ...

    async def get_job(self, job_id: str) -> JobView | None:
        """Return the job with id `job_id` wherever it is, or None."""
        ...

    async def delete_job(self, job_id: str) -> bool:
        """Delete a waiting, delayed, failed or timeout job; return whether there was one.

        A reserved job is left alone: a worker holds it.
        """
        ...

    async def retry_job(self, job_id: str) -> bool:
        """Move one failed or timeout job back to `waiting` (a reload of one job).

        Like `reload()`, it keeps the attempts made. Returns whether the job was there.
        """
        ...

    async def group_counts(self) -> dict[str, GroupCounts]:
        """Return, for every group with a waiting or reserved job, how many there are.

        Jobs held back by a limit count as waiting; delayed jobs not yet due do not count.
        """
        ...


class Clock(Protocol):
    """Where drivers read the time; tests pass a `corequeue.testing.FakeClock`.

    `now_us()` is the precise reading: due times are compared against it (or against a due
    instant rounded up from it), so a job is never handed out before its exact due instant.
    `now_ms()` is the same instant rounded down, for what needs only milliseconds.
    """

    def now_us(self) -> int:
        """Return the current time in microseconds since the Unix epoch."""
        ...

    def now_ms(self) -> int:
        """Return the current time in whole milliseconds since the Unix epoch, rounded down."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now_us(self) -> int:
        """Return the current time in microseconds since the Unix epoch."""
        return time.time_ns() // 1_000

    def now_ms(self) -> int:
        """Return the current time in whole milliseconds since the Unix epoch, rounded down."""
        return time.time_ns() // 1_000_000


def due_ms(now_us: int, delay: timedelta) -> int:
    """Return the whole millisecond from which a job delayed by `delay` at `now_us` may run.

    Stores that keep due times in milliseconds compare them with now rounded down, so a due
    instant is rounded up: the job never runs before `now_us + delay`, to the microsecond, and
    at most a millisecond after it. A zero (or negative) delay is due at once, never pushed
    into the next millisecond.

    Example:
        >>> due_ms(1_000_999, timedelta(milliseconds=1)), due_ms(1_000_999, timedelta(0))
        (1002, 1000)
    """
    delay_us = delay // _MICROSECOND
    if delay_us <= 0:
        return (now_us + delay_us) // 1_000
    return -(-(now_us + delay_us) // 1_000)


_MICROSECOND = timedelta(microseconds=1)


def parse_channel(channel: Channel | str) -> Channel:
    """Return `channel` as a Channel; raise InvalidOption naming the valid ones."""
    try:
        return Channel(channel)
    except ValueError:
        names = ", ".join(c.value for c in Channel)
        raise InvalidOption(f"unknown channel {channel!r}; expected one of {names}") from None


def reloadable(channel: Channel | str) -> Channel:
    """Return `channel` if it may be reloaded; raise InvalidOption (a ValueError) otherwise."""
    parsed = parse_channel(channel)
    if parsed not in RELOADABLE:
        raise InvalidOption(
            f"only the failed and timeout channels can be reloaded, not {parsed.value!r}"
        )
    return parsed


def check_pop_limit(limit: int) -> None:
    """Raise InvalidOption unless `limit` (the most jobs one pop_many may reserve) is at least 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidOption(f"limit must be an int of at least 1, got {limit!r}")


def check_listing(channel: Channel | str, offset: int, limit: int) -> Channel:
    """Return `channel` parsed; raise InvalidOption for a page `list_jobs()` cannot give."""
    parsed = parse_channel(channel)
    if offset < 0:
        raise InvalidOption(f"offset must not be negative, got {offset}")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidOption(f"limit must be from 1 to {MAX_LIST_LIMIT}, got {limit}")
    return parsed


def instant_of_ms(ms: int) -> datetime:
    """Return milliseconds since the Unix epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


LEASE_EXPIRED = "lease expired: the worker holding the job stopped renewing it (killed or hung?)"
"""The `last_error` a driver records when it recovers a job whose lease ran out."""
