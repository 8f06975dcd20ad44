"""Jobs: the Job and DeferrableJob protocols, job_from(), adjust() and the persisted envelope.

A *job* is anything with a string `type` and a `data` attribute. `adjust()` attaches delivery
options (defer, attempts, timeout, identity); the queue turns a job into a `PersistedJob`, the
envelope every driver stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import msgspec

from corequeue.errors import DecodeError, InvalidOption, is_clean_text, shown

DEFAULT_HANDLE_TIMEOUT = timedelta(hours=1)
"""How long all listeners of one job may run, unless `adjust(timeout=...)` says otherwise."""

DEFAULT_MAX_ATTEMPTS = 1
"""How many attempts a job gets, unless `adjust(max_attempts=...)` says otherwise."""

ENVELOPE_VERSION = 2
"""Version of the serialized envelope written by `PersistedJob.to_bytes()`."""

READABLE_ENVELOPE_VERSIONS = (1, 2)
"""The envelope versions `PersistedJob.from_bytes()` reads (see docs/wire-format.md)."""


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


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running job got: a fraction from 0 to 1 and a short message.

    Example:
        >>> Progress(0.5, "halfway").percent
        50
    """

    fraction: float
    message: str = ""

    @property
    def percent(self) -> int:
        """The fraction in whole percent, rounded down."""
        return int(self.fraction * 100)


MAX_PROGRESS_MESSAGE_CHARS = 200
"""The longest progress message `set_progress` accepts."""


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
    priority: int = 0
    """Among due jobs, higher runs first (-100..100); equal priorities run in due order."""
    group: str | None = None
    """Who the job belongs to (a tenant, an API host), for per-group limits."""
    keep_result: timedelta | None = None
    """How long the job stays in `completed` with its result once acked (None: the queue's
    `keep_results`; no result is kept when both are None)."""
    result: bytes | None = field(default=None, compare=False, repr=False)
    """The listeners' return value, encoded by the codec, once the job completed (an ack of a
    job with a result and a `keep_result` moves it to `completed` instead of removing it)."""
    progress: Progress | None = field(default=None, compare=False, repr=False)
    """How far the running attempt got (`ReceivedJob.set_progress`): stored by the next lease
    renewal, and shown by inspection while the job is reserved (and after it completed)."""
    cancel_requested: bool = field(default=False, compare=False, repr=False)
    """Set by `Driver.renew_many` on the holder's copy when `cancel(id)` asked to stop it."""
    token: str | None = field(default=None, compare=False, repr=False)
    """The reservation token of the pop that handed this copy out (None when not popped).

    Drivers store it with the reservation and settle the job only while it is still current;
    it is not part of the stored envelope.
    """
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Envelope fields this release does not know (a newer one wrote them), kept as read.

    `to_bytes()` writes them back beside the known fields, which win on a clash, so a job
    that passes through a worker of an older release keeps its priority or group.
    """
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """Text metadata that travels with the job (trace context, a request id): set by the
    `on_dispatch` hooks of middleware, read by listeners as `ReceivedJob.headers`.

    Checked by `check_headers` when the job is dispatched; stored by every driver.
    """

    @property
    def data(self) -> bytes:
        """The encoded payload (the Job protocol's `data`)."""
        return self.value

    def to_bytes(self) -> bytes:
        """Serialize the envelope in the versioned wire format (see docs/wire-format.md).

        Fields in `extra` are written back too: a reader keeps what it does not know.
        """
        encoded = _ENVELOPE_ENCODER.encode(_Envelope.from_job(self))
        return _with_extra(encoded, self.extra) if self.extra else encoded

    @classmethod
    def from_bytes(cls, raw: bytes) -> PersistedJob:
        """Read an envelope written by `to_bytes()` of this or an earlier release.

        Fields this release does not know land in `extra`.

        Raises:
            DecodeError: For anything but an envelope of a version this release reads.
        """
        try:
            envelope, extra = _decode_envelope(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(f"not a corequeue envelope: {exc}") from exc
        if envelope.v not in READABLE_ENVELOPE_VERSIONS:
            readable = " and ".join(map(str, READABLE_ENVELOPE_VERSIONS))
            raise DecodeError(
                f"envelope version {envelope.v} is not supported (this release reads "
                f"versions {readable})"
            )
        job = envelope.to_job()
        job.extra = extra
        return job


class _Envelope(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """Wire format v2 (v1 has the same fields): one JSON object; the payload as text when it is
    UTF-8, else base64. `headers` is optional and left out when empty: a reader of an earlier
    v2 release keeps it among its unknown fields.

    Unknown fields are refused here so that the common envelope, with none, decodes in one
    pass; `_decode_envelope` then takes the slower path that keeps them.
    """

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
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    priority: int = 0
    group: str | None = None
    keep_result_ms: int | None = None
    result: str | None = None
    result_b64: bytes | None = None

    @classmethod
    def from_job(cls, job: PersistedJob) -> _Envelope:
        text, raw = _split_value(job.value)
        result_text, result_raw = (None, None) if job.result is None else _split_value(job.result)
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
            headers=job.headers,
            priority=job.priority,
            group=job.group,
            keep_result_ms=None if job.keep_result is None else to_ms(job.keep_result),
            result=result_text,
            result_b64=result_raw,
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
            keep = (
                None if self.keep_result_ms is None else timedelta(milliseconds=self.keep_result_ms)
            )
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
            headers=self.headers,
            priority=self.priority,
            group=self.group,
            keep_result=keep,
            result=self.result.encode() if self.result is not None else self.result_b64,
        )


_ENVELOPE_ENCODER = msgspec.json.Encoder()
_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)
_FIELDS_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
_KNOWN_FIELDS = frozenset(_Envelope.__struct_fields__)


def _decode_envelope(raw: bytes) -> tuple[_Envelope, dict[str, Any]]:
    """Return the envelope in `raw` and its fields this release does not know."""
    try:
        return _ENVELOPE_DECODER.decode(raw), {}
    except msgspec.ValidationError:
        fields = _FIELDS_DECODER.decode(raw)
        extra = {name: value for name, value in fields.items() if name not in _KNOWN_FIELDS}
        if not extra:
            raise  # no unknown field: a known one is wrong
    known = {name: value for name, value in fields.items() if name in _KNOWN_FIELDS}
    envelope = _ENVELOPE_DECODER.decode(_ENVELOPE_ENCODER.encode(known))
    return envelope, {name: msgspec.json.decode(value) for name, value in extra.items()}


def _with_extra(encoded: bytes, extra: dict[str, Any]) -> bytes:
    """Return the JSON object `encoded` with the fields of `extra` it does not have added."""
    unknown = {name: value for name, value in extra.items() if name not in _KNOWN_FIELDS}
    if not unknown:
        return encoded
    # Both are JSON objects and `encoded` is never empty (it has "v"): splice the members.
    return encoded[:-1] + b"," + _ENVELOPE_ENCODER.encode(unknown)[1:]


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
    """A job with delivery options attached; returned by `adjust()`.

    `priority`, `group` and `keep_result` go into the envelope.
    """

    job: Job
    defer_by: timedelta | None = None
    schedule_at: datetime | None = None
    max_attempts: int | None = None
    timeout: timedelta | None = None
    unique_id: str | None = None
    priority: int = field(default=0, kw_only=True)
    group: str | None = field(default=None, kw_only=True)
    keep_result: timedelta | None = field(default=None, kw_only=True)

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
        persisted.priority = self.priority
        persisted.group = self.group
        if self.keep_result is not None:
            persisted.keep_result = self.keep_result


_JOB_CLASSES: frozenset[type[Any]] = frozenset({AdjustedJob, ValueJob})

MAX_ATTEMPTS_LIMIT = 2**31 - 1
"""The most attempts `adjust()` accepts: what every store's attempt counter holds."""

LONGEST_DELAY = timedelta(days=36_500)
"""The longest `defer`, `timeout` or `keep_result`, and how far ahead `schedule_at` may be."""

PRIORITY_RANGE = (-100, 100)
"""The lowest and highest `priority`."""

MAX_GROUP_CHARS = 200
"""The longest `group` name."""

MAX_UNIQUE_ID_CHARS = 1000
"""The longest `unique_id`."""

MAX_HEADERS = 64
"""The most headers one job carries."""

MAX_HEADER_NAME_CHARS = 200
"""The longest header name."""

MAX_HEADERS_CHARS = 8192
"""The most characters all of one job's header names and values hold together."""


def check_headers(headers: object) -> dict[str, str]:
    """Return `headers` as a plain dict after checking it is a bounded map of text to text.

    Names are 1 to 200 characters, values any length, both without NUL characters or lone
    surrogates; at most 64 headers of at most 8192 characters in all.

    Raises:
        InvalidOption: Naming the first header that breaks a rule.

    Example:
        >>> check_headers({"request-id": "r-42"})
        {'request-id': 'r-42'}
        >>> check_headers({"n": 1})
        Traceback (most recent call last):
        ...
        corequeue.errors.InvalidOption: header 'n' must have a str value, got 1 (int)
    """
    if not isinstance(headers, Mapping):
        raise InvalidOption(f"headers must be a mapping of str to str, got {shown(headers)}")
    if len(headers) > MAX_HEADERS:
        raise InvalidOption(f"a job carries at most {MAX_HEADERS} headers, got {len(headers)}")
    total = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_HEADER_NAME_CHARS:
            raise InvalidOption(
                f"header names must be str of 1 to {MAX_HEADER_NAME_CHARS} characters, "
                f"got {shown(name)}"
            )
        if not isinstance(value, str):
            raise InvalidOption(f"header {name!r} must have a str value, got {shown(value)}")
        if not (is_clean_text(name) and is_clean_text(value)):
            raise InvalidOption(f"header {name!r} holds a NUL character or a lone surrogate")
        total += len(name) + len(value)
    if total > MAX_HEADERS_CHARS:
        raise InvalidOption(
            f"headers hold {total} characters; a job carries at most {MAX_HEADERS_CHARS}"
        )
    return dict(headers)


def adjust(
    job: Any,
    *,
    defer: timedelta | None = None,
    schedule_at: datetime | None = None,
    max_attempts: int | None = None,
    timeout: timedelta | None = None,
    unique_id: str | None = None,
    priority: int | None = None,
    group: str | None = None,
    keep_result: timedelta | None = None,
) -> AdjustedJob:
    """Attach delivery options to a job (a non-Job value is wrapped by `job_from` first).

    Every option is checked here, at the call, so no store ever sees a value it would read
    differently from another (see docs/guarantees.md, "Input validation").

    Args:
        job: The job, or any value to wrap.
        defer: Run no earlier than this long after dispatch (a timedelta, 0 to ~100 years).
        schedule_at: Run no earlier than this instant (a datetime; a naive one is taken as UTC;
            at most ~100 years ahead).
        max_attempts: Attempts allowed before the job goes to `failed` (an int, at least 1).
        timeout: Limit for one run of all listeners (a positive timedelta).
        unique_id: The job's identity: dispatching it again while it is pending does nothing
            (a str of 1 to 1000 characters).
        priority: Among due jobs, higher runs first (an int from -100 to 100; default 0).
        group: Who the job belongs to, for per-group limits (a str of 1 to 200 characters).
        keep_result: How long the finished job's result is kept (a timedelta, at least 0).

    Raises:
        InvalidOption: (a ValueError) naming the argument, for a value of the wrong type (a
            bool is not an int here) or out of its range, or for defer with schedule_at.

    Example:
        >>> later = adjust(job_from("hi"), defer=timedelta(minutes=3), max_attempts=5)
        >>> later.defer(), later.max_attempts
        (datetime.timedelta(seconds=180), 5)
        >>> adjust("hi", max_attempts=1.5)
        Traceback (most recent call last):
        ...
        corequeue.errors.InvalidOption: adjust(): max_attempts must be an int from 1 to \
2147483647, got 1.5 (float)
    """
    options: dict[str, Any] = {
        "defer": defer,
        "schedule_at": schedule_at,
        "max_attempts": max_attempts,
        "timeout": timeout,
        "unique_id": unique_id,
        "priority": priority,
        "group": group,
        "keep_result": keep_result,
    }
    _validate(options)
    if schedule_at is not None and schedule_at.tzinfo is None:
        options["schedule_at"] = schedule_at.replace(tzinfo=UTC)
    if isinstance(job, AdjustedJob):
        return _merged(job, options)
    if not is_job(job):
        job = job_from(job)
    elif not isinstance(job.type, str) or not job.type:
        raise InvalidOption(f"adjust(): job.type must be a non-empty str, got {shown(job.type)}")
    given = {name: value for name, value in options.items() if value is not None}
    return AdjustedJob(job, defer_by=given.pop("defer", None), **given)


def _merged(job: AdjustedJob, options: dict[str, Any]) -> AdjustedJob:
    """Return `job` with the options that were given replacing its own."""
    given = {name: value for name, value in options.items() if value is not None}
    if "defer" in given or "schedule_at" in given:  # a new time replaces the old, either kind
        given["defer_by"] = given.pop("defer", None)
        given.setdefault("schedule_at", None)
    return replace(job, **given)


def _validate(options: dict[str, Any]) -> None:
    """Check each given option's type and range; raise InvalidOption naming the first bad one."""
    for name, value in options.items():
        if value is not None:
            _CHECKS[name](name, value)
    if options["defer"] is not None and options["schedule_at"] is not None:
        raise InvalidOption("adjust(): give defer or schedule_at, not both")


def _check_duration(name: str, value: object, *, positive: bool = False) -> None:
    if not isinstance(value, timedelta):
        raise _wrong(name, "a timedelta", value)
    low = "more than 0" if positive else "at least 0"
    if value < timedelta(0) or (positive and not value) or value > LONGEST_DELAY:
        raise _wrong(name, f"a timedelta of {low} and at most {LONGEST_DELAY.days} days", value)


def _check_positive_duration(name: str, value: object) -> None:
    _check_duration(name, value, positive=True)


def _check_instant(name: str, value: object) -> None:
    if not isinstance(value, datetime):
        raise _wrong(name, "a datetime", value)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        too_late = aware - datetime.now(UTC) > LONGEST_DELAY
    except (TypeError, ValueError, OverflowError):  # a tzinfo whose utcoffset() misbehaves
        raise _wrong(name, "a datetime with a usable time zone", value) from None
    if too_late:
        raise _wrong(name, f"a datetime at most {LONGEST_DELAY.days} days ahead", value)


def _check_whole(name: str, value: object) -> None:
    low, high = _WHOLE_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _wrong(name, f"an int from {low} to {high}", value)


def _check_text(name: str, value: object) -> None:
    longest = _TEXT_LENGTHS[name]
    if not isinstance(value, str) or not 1 <= len(value) <= longest:
        raise _wrong(name, f"a str of 1 to {longest} characters", value)
    if not is_clean_text(value):
        raise _wrong(name, "a str without NUL characters or lone surrogates", value)


def _wrong(name: str, expected: str, value: object) -> InvalidOption:
    return InvalidOption(f"adjust(): {name} must be {expected}, got {shown(value)}")


_WHOLE_RANGES = {"max_attempts": (1, MAX_ATTEMPTS_LIMIT), "priority": PRIORITY_RANGE}
_TEXT_LENGTHS = {"unique_id": MAX_UNIQUE_ID_CHARS, "group": MAX_GROUP_CHARS}
_CHECKS: dict[str, Callable[[str, object], None]] = {
    "defer": _check_duration,
    "schedule_at": _check_instant,
    "max_attempts": _check_whole,
    "timeout": _check_positive_duration,
    "unique_id": _check_text,
    "priority": _check_whole,
    "group": _check_text,
    "keep_result": _check_duration,
}


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
    queue: str = field(default="default", kw_only=True)
    """The name of the queue the job came from."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The job's headers, read-only (set by middleware at dispatch; see middleware.py)."""
        return MappingProxyType(self.persisted.headers)

    async def set_progress(self, fraction: float, message: str = "") -> None:
        """Record how far this run got; the next lease renewal stores it (no round trip here).

        Inspection and the dashboard show it while the job runs. Calling it often costs
        nothing: only the latest value travels, with the renewal the worker makes anyway.

        Args:
            fraction: From 0 to 1.
            message: A short note (at most 200 characters), e.g. "page 3 of 10".

        Raises:
            InvalidOption: A fraction outside 0..1 or a message too long.

        Example:
            >>> async def resize(job: ReceivedJob) -> None:
            ...     for n, image in enumerate(job.data.images):
            ...         await job.set_progress(n / len(job.data.images), f"image {n}")
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise InvalidOption(f"fraction must be a number from 0 to 1, got {fraction!r}")
        if not 0 <= fraction <= 1:
            raise InvalidOption(f"fraction must be from 0 to 1, got {fraction!r}")
        if not isinstance(message, str) or len(message) > MAX_PROGRESS_MESSAGE_CHARS:
            raise InvalidOption(
                f"message must be a str of at most {MAX_PROGRESS_MESSAGE_CHARS} characters"
            )
        self.persisted.progress = Progress(float(fraction), message)
