"""What the SQL drivers (SQLite, PostgreSQL) share: the row states and reading a row as a job.

Both keep every job of a queue in one table whose `state` column says where the job is;
`waiting` and `delayed` are one pending state split by the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from corequeue.drivers.base import Channel, WorkerInfo, instant_of_ms
from corequeue.errors import DecodeError
from corequeue.job import PersistedJob, Progress

PENDING: Final = 0
RESERVED: Final = 1
FAILED: Final = 2
TIMEOUT: Final = 3
COMPLETED: Final = 4
"""A finished job kept with its result; `due_ms` is when it is pruned."""

PARKED_STATE: Final = {
    Channel.FAILED: FAILED,
    Channel.TIMEOUT: TIMEOUT,
    Channel.RESERVED: RESERVED,
    Channel.COMPLETED: COMPLETED,
}
"""The state of each channel that is not split by the clock."""


def job_from_columns(columns: Sequence[Any]) -> PersistedJob:
    """Build a job from SQL columns `id, type, value, handle_timeout_ms, backoff_ms, attempts,
    max_attempts, last_error`, then optionally `keep_result_ms, result` and `progress,
    progress_message`.

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
    keep_ms, result = (columns[8], columns[9]) if len(columns) >= 10 else (None, None)
    if isinstance(result, str):
        result = result.encode()
    _expect(result, bytes | bytearray | memoryview | None, "result")
    progress = None
    if len(columns) >= 12 and isinstance(columns[10], int | float):
        progress = Progress(float(columns[10]), str(columns[11] or ""))
    return PersistedJob(
        id=job_id,
        type=job_type,
        value=bytes(value),
        handle_timeout=_duration(timeout_ms, "handle_timeout_ms"),
        backoff=_duration(backoff_ms, "backoff_ms"),
        attempts=attempts,
        max_attempts=max_attempts,
        last_error=last_error,
        keep_result=None if keep_ms is None else _duration(keep_ms, "keep_result_ms"),
        result=None if result is None else bytes(result),
        progress=progress,
    )


def worker_of(row: Sequence[Any]) -> WorkerInfo:
    """Return the WorkerInfo of a row `id, hostname, pid, started_ms, last_seen_ms, running`."""
    worker_id, hostname, pid, started_ms, last_seen_ms, running = row
    return WorkerInfo(
        str(worker_id),
        str(hostname),
        int(pid),
        instant_of_ms(int(started_ms)),
        instant_of_ms(int(last_seen_ms)),
        int(running),
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
