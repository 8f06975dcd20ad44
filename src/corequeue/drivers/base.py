"""The Driver contract: durable storage for one named queue and its five channels.

A driver stores persisted jobs and moves them between channels atomically. It never decides
retries, backoff, events or metrics: the queue does that once, for every driver.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from corequeue.errors import DecodeError, InvalidOption
from corequeue.job import PersistedJob

DEFAULT_LEASE = timedelta(seconds=30)
"""How long a popped job stays reserved without a renewal before it counts as abandoned."""

DEFAULT_POP_TIMEOUT = timedelta(seconds=1)
"""How long `pop()` waits for a job before raising QueueEmpty."""


class Channel(StrEnum):
    """The five channels of a queue."""

    WAITING = "waiting"
    DELAYED = "delayed"
    RESERVED = "reserved"
    FAILED = "failed"
    TIMEOUT = "timeout"


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

    @property
    def pending(self) -> int:
        """Jobs still to run: waiting, delayed and reserved."""
        return self.waiting + self.delayed + self.reserved

    def as_dict(self) -> dict[str, int]:
        """Return the counts keyed by channel name."""
        return {channel.value: getattr(self, channel.value) for channel in Channel}


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
        return cls(*(f"{tag}:{channel.value}" for channel in Channel))

    def key(self, channel: Channel) -> str:
        """Return the key of `channel`."""
        return str(getattr(self, channel.value))


@runtime_checkable
class Driver(Protocol):
    """Durable storage for one named queue and its five channels."""

    async def push(self, job: PersistedJob, delay: timedelta) -> None:
        """Put `job` in `waiting`, or in `delayed` until `delay` has passed.

        A job whose id is already waiting, delayed or reserved is left as it is.
        """
        ...

    async def pop(self) -> PersistedJob:
        """Reserve the next due job under a lease; raise QueueEmpty after the pop timeout."""
        ...

    async def ack(self, job: PersistedJob) -> None:
        """Remove a reserved job: it is done."""
        ...

    async def fail(self, job: PersistedJob) -> None:
        """Move a reserved job to `failed`, keeping its envelope (and `last_error`)."""
        ...

    async def retry(self, job: PersistedJob) -> None:
        """Move a reserved job to `delayed` for `job.backoff`, storing its updated envelope."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job; return whether there was one."""
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

    async def close(self) -> None:
        """Release connections and threads; the driver is not used again."""
        ...


@runtime_checkable
class LeaseDriver(Driver, Protocol):
    """A driver whose reservations are leases the consumer renews (every corequeue driver)."""

    lease: timedelta

    async def renew(self, job: PersistedJob) -> None:
        """Extend the lease of a reserved job by `lease` from now."""
        ...

    async def release(self, job: PersistedJob) -> None:
        """Put a reserved job back in `waiting` without counting an attempt (shutdown)."""
        ...


@runtime_checkable
class BatchLeaseDriver(LeaseDriver, Protocol):
    """A lease driver that acks and renews several reserved jobs per round trip.

    The consumer acks finished jobs in batches and renews every lease it holds from one
    periodic task; a job stays reserved (and leased) in the store until its batch is acked.
    """

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> None:
        """Remove every reserved job of `jobs` (a job no longer reserved is left as it is)."""
        ...

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> None:
        """Extend the leases of every reserved job of `jobs` by `lease` from now."""
        ...


@runtime_checkable
class BatchDriver(Driver, Protocol):
    """A driver that moves several jobs per round trip."""

    async def push_many(self, jobs: Sequence[tuple[PersistedJob, timedelta]]) -> None:
        """Push every `(job, delay)` pair, in as few round trips as the store allows."""
        ...

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve up to `limit` due jobs (at least one), oldest first, each under its own lease.

        Waits like `pop()` and raises QueueEmpty after the pop timeout.
        """
        ...


@dataclass(frozen=True, slots=True)
class JobView:
    """One stored job as an operator sees it: its envelope, its channel and its next moment.

    Attributes:
        job: The stored envelope (for a job recovered from an expired lease, with that attempt
            counted and `last_error` set, as a worker would receive it).
        channel: Where the job is now; a delayed job already due counts as waiting.
        due_at: When a delayed job falls due, or when a reserved job's lease runs out (aware,
            UTC); None in the other channels.
    """

    job: PersistedJob
    channel: Channel
    due_at: datetime | None = None


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


class Clock(Protocol):
    """Where drivers read the time; tests pass a `corequeue.testing.FakeClock`."""

    def now_ms(self) -> int:
        """Return the current time in milliseconds since the Unix epoch."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now_ms(self) -> int:
        """Return the current time in milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000


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


def job_from_columns(columns: Sequence[Any]) -> PersistedJob:
    """Build a job from SQL columns `id, type, value, handle_timeout_ms, backoff_ms, attempts,
    max_attempts, last_error`.

    Raises:
        DecodeError: For columns no driver writes (a row edited by hand or by another tool):
            the SQL drivers park such a row in `failed` instead of jamming every pop.
    """
    job_id, job_type, value, timeout_ms, backoff_ms = columns[:5]
    attempts, max_attempts, last_error = columns[5:8]
    if isinstance(value, str):  # SQLite columns take any type: a payload written as TEXT
        value = value.encode()
    _expect(job_id, str, "id")
    _expect(job_type, str, "type")
    _expect(value, bytes | bytearray | memoryview, "value")
    _expect(attempts, int, "attempts")
    _expect(max_attempts, int, "max_attempts")
    _expect(last_error, str | None, "last_error")
    return PersistedJob(
        id=job_id,
        type=job_type,
        value=bytes(value),
        handle_timeout=_duration(timeout_ms, "handle_timeout_ms"),
        backoff=_duration(backoff_ms, "backoff_ms"),
        attempts=attempts,
        max_attempts=max_attempts,
        last_error=last_error,
    )


UNREADABLE_TYPE = "<unreadable>"
"""The type inspection shows for a stored job it cannot read (see `readable_or_not`)."""


def readable_or_not(columns: Sequence[Any]) -> PersistedJob:
    """Return the job of SQL columns, or a stand-in for an operator when they are no job.

    The stand-in keeps the id and payload bytes as far as they go, has the type
    `UNREADABLE_TYPE`, and says why in `last_error`: listing a channel must never fail because
    of one row edited by hand.
    """
    try:
        return job_from_columns(columns)
    except DecodeError as exc:
        job_id, value = columns[0], columns[2]
        if not isinstance(value, bytes | bytearray | memoryview):
            value = str(value).encode()
        return PersistedJob(
            str(job_id), UNREADABLE_TYPE, bytes(value), last_error=f"DecodeError: {exc}"
        )


def _expect(value: Any, kind: Any, column: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DecodeError(f"stored column {column} holds {value!r:.80}, not a job's {column}")


def _duration(ms: Any, column: str) -> timedelta:
    _expect(ms, int, column)
    try:
        return timedelta(milliseconds=ms)
    except OverflowError:
        raise DecodeError(f"stored column {column} holds {ms}, out of range") from None


LEASE_EXPIRED = "lease expired: the worker holding the job stopped renewing it (killed or hung?)"
"""The `last_error` a driver records when it recovers a job whose lease ran out."""


class Wakeup:
    """Wakes `pop()` calls waiting in this process when a job arrives, on any event loop.

    Bound to no loop, so one driver may serve `dispatch_sync` (the queue's helper loop) and
    `consume()` (the caller's loop) at once.
    """

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._lock = threading.Lock()

    async def wait(self, timeout_seconds: float) -> None:
        """Return when `notify()` is called or after `timeout_seconds`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout_seconds)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def notify(self) -> None:
        """Wake every waiter."""
        with self._lock:
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
