"""Jobs: the Job and DeferrableJob protocols, job_from(), adjust() and the persisted envelope.

A *job* is anything with a string `type` and a `data` attribute. `adjust()` attaches delivery
options (defer, attempts, timeout, identity); the queue turns a job into a `PersistedJob`, the
envelope every driver stores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import msgspec

from corequeue.errors import DecodeError, InvalidOption

DEFAULT_HANDLE_TIMEOUT = timedelta(hours=1)
"""How long all listeners of one job may run, unless `adjust(timeout=...)` says otherwise."""

DEFAULT_MAX_ATTEMPTS = 1
"""How many attempts a job gets, unless `adjust(max_attempts=...)` says otherwise."""

ENVELOPE_VERSION = 1
"""Version of the serialized envelope written by `PersistedJob.to_bytes()`."""


@runtime_checkable
class Job(Protocol):
    """Anything with a string `type` and a `data` payload can be dispatched.

    Example:
        >>> job = job_from(42)
        >>> (job.type, job.data)
        ('builtins.int', 42)
    """

    @property
    def type(self) -> str:
        """The job type name listeners subscribe to."""
        ...

    @property
    def data(self) -> Any:
        """The payload."""
        ...


@runtime_checkable
class DeferrableJob(Job, Protocol):
    """A job that says when it runs and tunes its own envelope.

    `adjust()` returns one; a user class may implement the two methods itself.
    """

    def defer(self) -> timedelta:
        """Return how long to wait before the job may run (zero: at once)."""
        ...

    def decorate(self, persisted: PersistedJob) -> None:
        """Set envelope options (id, attempts, timeout) on the freshly built `persisted`."""
        ...


@dataclass(frozen=True, slots=True)
class ValueJob:
    """A job built from a plain value by `job_from()`."""

    type: str
    data: Any


def type_name_of(cls: type) -> str:
    """Return the job type name of a payload class: its module and qualified name.

    A class may choose its own name with a `__job_type__` string attribute.

    Example:
        >>> type_name_of(int)
        'builtins.int'
    """
    custom = getattr(cls, "__job_type__", None)
    if isinstance(custom, str):
        return custom
    return f"{cls.__module__}.{cls.__qualname__}"


def job_from(value: Any, *, type_name: str | None = None) -> ValueJob:
    """Wrap any value in a job whose type is the value's class name.

    Args:
        value: The payload: a dataclass, pydantic model, msgspec Struct, dict, primitive...
        type_name: A type name to use instead of the class name (for TypedDicts, say).

    Example:
        >>> job_from("hello").type
        'builtins.str'
    """
    return ValueJob(type=type_name or type_name_of(type(value)), data=value)


def is_job(value: Any) -> bool:
    """Return `isinstance(value, Job)`, quickly: it runs once per dispatched job.

    On Python 3.11 an isinstance check against a runtime protocol re-derives the protocol's
    members on every call (microseconds); the two attribute lookups are what it checks.
    """
    return type(value) in _JOB_CLASSES or (hasattr(value, "type") and hasattr(value, "data"))


def is_deferrable(value: Any) -> bool:
    """Return `isinstance(value, DeferrableJob)`, quickly (see `is_job`)."""
    if type(value) is AdjustedJob:
        return True
    return (
        is_job(value)
        and callable(getattr(value, "defer", None))
        and callable(getattr(value, "decorate", None))
    )


def new_job_id() -> str:
    """Return a random, collision-free job id (128 bits, hex)."""
    return os.urandom(16).hex()


def new_token() -> str:
    """Return a fresh reservation token (96 random bits, hex): one per pop."""
    return os.urandom(12).hex()


@dataclass(slots=True)
class PersistedJob:
    """The envelope a driver stores: a job's encoded payload plus its delivery state.

    It is itself a Job: `type` is the job type, `data` the encoded payload bytes.
    """

    id: str
    type: str
    value: bytes
    handle_timeout: timedelta = DEFAULT_HANDLE_TIMEOUT
    backoff: timedelta = timedelta(0)
    attempts: int = 1
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    last_error: str | None = None
    token: str | None = field(default=None, compare=False, repr=False)
    """The reservation token of the pop that handed this copy out (None when not popped).

    Drivers store it with the reservation and settle the job only while it is still current;
    it is not part of the stored envelope.
    """

    @property
    def data(self) -> bytes:
        """The encoded payload (the Job protocol's `data`)."""
        return self.value

    def to_bytes(self) -> bytes:
        """Serialize the envelope in the versioned wire format (see docs/wire-format.md)."""
        return _ENVELOPE_ENCODER.encode(_Envelope.from_job(self))

    @classmethod
    def from_bytes(cls, raw: bytes) -> PersistedJob:
        """Read an envelope written by `to_bytes()`; raise DecodeError on anything else."""
        try:
            envelope = _ENVELOPE_DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(f"not a corequeue envelope: {exc}") from exc
        if envelope.v != ENVELOPE_VERSION:
            raise DecodeError(
                f"envelope version {envelope.v} is not supported (this release reads "
                f"version {ENVELOPE_VERSION})"
            )
        return envelope.to_job()


class _Envelope(msgspec.Struct, omit_defaults=True):
    """Wire format v1: one JSON object; the payload as text when it is UTF-8, else base64."""

    v: int
    id: str
    type: str
    handle_timeout_ms: int
    attempts: int
    max_attempts: int
    value: str | None = None
    value_b64: bytes | None = None
    backoff_ms: int = 0
    last_error: str | None = None

    @classmethod
    def from_job(cls, job: PersistedJob) -> _Envelope:
        text, raw = _split_value(job.value)
        return cls(
            v=ENVELOPE_VERSION,
            id=job.id,
            type=job.type,
            handle_timeout_ms=to_ms(job.handle_timeout),
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            value=text,
            value_b64=raw,
            backoff_ms=to_ms(job.backoff),
            last_error=job.last_error,
        )

    def to_job(self) -> PersistedJob:
        if self.value is not None:
            value = self.value.encode()
        elif self.value_b64 is not None:
            value = self.value_b64
        else:
            raise DecodeError(f"envelope of job {self.id} has no value")
        try:
            handle_timeout = timedelta(milliseconds=self.handle_timeout_ms)
            backoff = timedelta(milliseconds=self.backoff_ms)
        except OverflowError as exc:  # well-formed JSON, but past timedelta's ~2.7 million years
            raise DecodeError(
                f"envelope of job {self.id} holds a duration out of range: {exc}"
            ) from exc
        return PersistedJob(
            id=self.id,
            type=self.type,
            value=value,
            handle_timeout=handle_timeout,
            backoff=backoff,
            attempts=self.attempts,
            max_attempts=self.max_attempts,
            last_error=self.last_error,
        )


_ENVELOPE_ENCODER = msgspec.json.Encoder()
_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)


def _split_value(value: bytes) -> tuple[str | None, bytes | None]:
    try:
        return value.decode(), None
    except UnicodeDecodeError:
        return None, value


def to_ms(duration: timedelta) -> int:
    """Return a duration in whole milliseconds, rounded up so nothing runs early."""
    micros = duration.days * 86_400_000_000 + duration.seconds * 1_000_000 + duration.microseconds
    return -(-micros // 1000)


@dataclass(frozen=True, slots=True)
class AdjustedJob:
    """A job with delivery options attached; returned by `adjust()`."""

    job: Job
    defer_by: timedelta | None = None
    schedule_at: datetime | None = None
    max_attempts: int | None = None
    timeout: timedelta | None = None
    unique_id: str | None = None

    @property
    def type(self) -> str:
        """The wrapped job's type."""
        return self.job.type

    @property
    def data(self) -> Any:
        """The wrapped job's payload."""
        return self.job.data

    def defer(self) -> timedelta:
        """Return the delay before the job may run, computed now for `schedule_at`."""
        if self.schedule_at is not None:
            return max(self.schedule_at - datetime.now(UTC), timedelta(0))
        return self.defer_by or timedelta(0)

    def decorate(self, persisted: PersistedJob) -> None:
        """Copy the options that were set onto the envelope."""
        if self.max_attempts is not None:
            persisted.max_attempts = self.max_attempts
        if self.timeout is not None:
            persisted.handle_timeout = self.timeout
        if self.unique_id is not None:
            persisted.id = self.unique_id


_JOB_CLASSES: frozenset[type[Any]] = frozenset({AdjustedJob, ValueJob})


def adjust(
    job: Any,
    *,
    defer: timedelta | None = None,
    schedule_at: datetime | None = None,
    max_attempts: int | None = None,
    timeout: timedelta | None = None,
    unique_id: str | None = None,
) -> AdjustedJob:
    """Attach delivery options to a job (a non-Job value is wrapped by `job_from` first).

    Args:
        job: The job, or any value to wrap.
        defer: Run no earlier than this long after dispatch.
        schedule_at: Run no earlier than this instant (aware; a naive one is taken as UTC).
        max_attempts: Attempts allowed before the job goes to `failed` (at least 1).
        timeout: Limit for one run of all listeners (positive).
        unique_id: The job's identity: dispatching it again while it is pending does nothing.

    Raises:
        InvalidOption: (a ValueError) for defer with schedule_at, max_attempts < 1, timeout <= 0,
            a negative defer or an empty unique_id.

    Example:
        >>> later = adjust(job_from("hi"), defer=timedelta(minutes=3), max_attempts=5)
        >>> later.defer(), later.max_attempts
        (datetime.timedelta(seconds=180), 5)
    """
    _validate(defer, schedule_at, max_attempts, timeout, unique_id)
    if schedule_at is not None and schedule_at.tzinfo is None:
        schedule_at = schedule_at.replace(tzinfo=UTC)
    if isinstance(job, AdjustedJob):
        return AdjustedJob(
            job=job.job,
            defer_by=defer if defer is not None or schedule_at is not None else job.defer_by,
            schedule_at=(
                schedule_at if schedule_at is not None or defer is not None else job.schedule_at
            ),
            max_attempts=max_attempts if max_attempts is not None else job.max_attempts,
            timeout=timeout if timeout is not None else job.timeout,
            unique_id=unique_id if unique_id is not None else job.unique_id,
        )
    if not is_job(job):
        job = job_from(job)
    return AdjustedJob(job, defer, schedule_at, max_attempts, timeout, unique_id)


def _validate(
    defer: timedelta | None,
    schedule_at: datetime | None,
    max_attempts: int | None,
    timeout: timedelta | None,
    unique_id: str | None,
) -> None:
    if defer is not None and schedule_at is not None:
        raise InvalidOption("give defer or schedule_at, not both")
    if defer is not None and defer < timedelta(0):
        raise InvalidOption(f"defer must not be negative, got {defer}")
    if max_attempts is not None and (isinstance(max_attempts, bool) or max_attempts < 1):
        raise InvalidOption(f"max_attempts must be at least 1, got {max_attempts!r}")
    if timeout is not None and timeout <= timedelta(0):
        raise InvalidOption(f"timeout must be positive, got {timeout}")
    if unique_id is not None and not unique_id:
        raise InvalidOption("unique_id must not be empty")


@dataclass(frozen=True, slots=True)
class ReceivedJob:
    """What a listener receives: the job as dispatched plus the facts of this delivery.

    Example:
        >>> async def send(job: ReceivedJob) -> None:
        ...     print(job.data, job.id, f"attempt {job.attempt} of {job.max_attempts}")
    """

    type: str
    data: Any
    id: str
    attempt: int
    max_attempts: int
    persisted: PersistedJob = field(repr=False)
