"""What the SQL drivers (SQLite, PostgreSQL) share: the row states and reading a row as a job.

Both keep every job of a queue in one table whose `state` column says where the job is;
`waiting` and `delayed` are one pending state split by the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

import msgspec

from corequeue.drivers.base import Channel, GroupCounts, WorkerInfo, instant_of_ms
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


def headers_column(headers: dict[str, str]) -> str | None:
    """Return what the `headers` column stores for `headers`: JSON text, NULL when empty."""
    return msgspec.json.encode(headers).decode() if headers else None


JOB_COLUMNS: Final = (
    "id, type, value, handle_timeout_ms, backoff_ms, attempts, max_attempts, last_error, "
    "headers, priority, job_group, keep_result_ms, result, progress, progress_message"
)
"""The columns a SQL driver reads a job from, in the order `job_from_columns` takes them."""

JOB_COLUMN_COUNT: Final = JOB_COLUMNS.count(",") + 1
PRIORITY_COLUMN: Final = 9
"""The position of `priority` in `JOB_COLUMNS`."""


def job_from_columns(columns: Sequence[Any]) -> PersistedJob:
    """Build a job from SQL columns `id, type, value, handle_timeout_ms, backoff_ms, attempts,
    max_attempts, last_error`, then optionally `headers, priority, job_group`, `keep_result_ms,
    result` and `progress, progress_message`: the columns of `JOB_COLUMNS`, or a prefix of them
    at least 8 long (rows of an earlier schema). A caller leaves out any column of its own that
    follows them (a rowid, a due time).

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
    priority, group = (columns[9], columns[10]) if len(columns) > 10 else (0, None)
    _expect(priority, int, "priority")
    _expect(group, str | None, "job_group")
    keep_ms, result = (columns[11], columns[12]) if len(columns) > 12 else (None, None)
    if isinstance(result, str):
        result = result.encode()
    _expect(result, bytes | bytearray | memoryview | None, "result")
    progress = None
    if len(columns) > 14 and isinstance(columns[13], int | float):
        progress = Progress(float(columns[13]), str(columns[14] or ""))
    return PersistedJob(
        id=job_id,
        type=job_type,
        value=bytes(value),
        handle_timeout=_duration(timeout_ms, "handle_timeout_ms"),
        backoff=_duration(backoff_ms, "backoff_ms"),
        attempts=attempts,
        max_attempts=max_attempts,
        last_error=last_error,
        headers=_headers(columns[8]) if len(columns) > 8 else {},
        priority=priority,
        group=group,
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


def counts_by_group(rows: Sequence[Sequence[Any]]) -> dict[str, GroupCounts]:
    """Return `GroupCounts` by group from rows `group, state, count` (pending rows are due)."""
    counts: dict[str, GroupCounts] = {}
    for group, state, count in sorted(rows, key=lambda row: str(row[0])):
        found = counts.get(str(group), GroupCounts())
        if state == RESERVED:
            found = GroupCounts(found.waiting, found.reserved + int(count))
        else:
            found = GroupCounts(found.waiting + int(count), found.reserved)
        counts[str(group)] = found
    return counts


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


def _headers(stored: Any) -> dict[str, str]:
    """Read the `headers` column: NULL, JSON text (SQLite) or a decoded jsonb value."""
    if stored is None:
        return {}
    if isinstance(stored, str | bytes):
        try:
            return msgspec.json.decode(stored, type=dict[str, str])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(f"stored column headers holds {stored!r:.80}: {exc}") from None
    if isinstance(stored, Mapping) and all(
        isinstance(name, str) and isinstance(value, str) for name, value in stored.items()
    ):
        return dict(stored)
    raise DecodeError(f"stored column headers holds {stored!r:.80}, not a map of text to text")
