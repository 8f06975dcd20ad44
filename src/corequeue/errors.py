"""Exceptions raised by corequeue.

CoreQueueError
├── InvalidOption (also a ValueError)
│   └── ConfigError
├── QueueEmpty
├── DecodeError
├── EncodeError (also a TypeError)
├── PayloadTooLarge (also a ValueError)
├── NoListener
├── HandleTimeout
├── MiddlewareError
├── WorkerCrashed
├── JobCancelled
├── JobFailed
├── JobNotFound (also a LookupError)
└── DriverError
    └── StoreUnavailable

Everything corequeue raises derives from `CoreQueueError`, so callers can catch ours and only ours.
"""

from __future__ import annotations


class CoreQueueError(Exception):
    """Base class of every exception corequeue raises."""


class InvalidOption(CoreQueueError, ValueError):
    """An option was given a value it cannot take."""


class ConfigError(InvalidOption):
    """A configuration file or variable is unreadable or holds a value that cannot be used.

    The message is one line: where the value came from, the key, and what was expected. It
    never quotes a URL or DSN, which may hold a password.

    Attributes:
        source: Where the value came from: `file:line`, the file, or `environment variable X`.
        key: The dotted key, e.g. `queue.myQueue.parallelism` (empty for the whole file).
        expected: What the key should hold, and what it held instead.
    """

    def __init__(self, source: str, key: str, expected: str) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        where = f"{source}: {key}" if key else source
        super().__init__(" ".join(f"{where}: {expected}".splitlines()))


class QueueEmpty(CoreQueueError):
    """No job became ready before the driver's pop timeout ran out."""


class DecodeError(CoreQueueError):
    """Stored bytes could not be turned back into a job or its payload."""


class EncodeError(CoreQueueError, TypeError):
    """A payload could not be turned into bytes by the codec."""


class PayloadTooLarge(CoreQueueError, ValueError):
    """An encoded payload is larger than the queue accepts."""


class NoListener(CoreQueueError):
    """A job arrived whose type no listener subscribed to."""


class HandleTimeout(CoreQueueError):
    """The listeners of a job ran longer than its handle timeout and were cancelled."""


class MiddlewareError(CoreQueueError):
    """A middleware hook raised: the dispatch did not happen, or the attempt failed.

    The message names the middleware and the hook; the hook's exception is the `__cause__`.
    """


class WorkerCrashed(CoreQueueError):
    """A consumer's side task (lease renewal, acks, gauge) died; the consumer shut down.

    Raised from `consume()` with the side task's error as its cause, after the jobs the
    consumer held were settled or released: a worker never stalls silently.
    """


class DriverError(CoreQueueError):
    """A driver could not complete an operation."""


class JobCancelled(CoreQueueError):
    """`queue.cancel(id)` stopped the job while it ran: its attempt failed, with no retry.

    The error of the `BeforeAbort` event of such a job; its `last_error` is "cancelled".
    """


class JobFailed(CoreQueueError):
    """The job whose result was asked for ended in `failed` or `timeout`.

    Attributes:
        job_id: The job's id.
        last_error: Why its last attempt failed.
        channel: Where it ended: "failed" or "timeout".
    """

    def __init__(self, job_id: str, last_error: str | None, channel: str = "failed") -> None:
        self.job_id = job_id
        self.last_error = last_error
        self.channel = channel
        super().__init__(f"job {job_id} ended in {channel}: {last_error or 'no error recorded'}")


class JobNotFound(CoreQueueError, LookupError):
    """No job has that id: never dispatched, finished without a kept result, or pruned."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"no job {job_id!r}: unknown, finished without keeping its result, or pruned"
        )


class StoreUnavailable(DriverError):
    """The store behind a driver cannot be reached; the operation did not happen."""

    def __init__(self, store: str, reason: str = "") -> None:
        self.store = store
        message = f"store {store} is unavailable"
        super().__init__(f"{message}: {reason}" if reason else message)


def shown(value: object) -> str:
    """A short repr of `value` and its type, for error messages (at most 60 characters).

    Example:
        >>> shown(1.5)
        '1.5 (float)'
    """
    try:
        text = repr(value)
    except Exception:  # a repr that raises must not hide the real mistake
        text = "<unprintable>"
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def is_clean_text(value: str) -> bool:
    """Return whether `value` has no NUL character and no lone surrogate (it encodes as UTF-8).

    Example:
        >>> is_clean_text("a"), is_clean_text("a" + chr(0)), is_clean_text(chr(0xD800))
        (True, False, False)
    """
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
