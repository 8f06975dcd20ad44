"""How the Redis driver reads what its scripts return: envelopes, and jobs for inspection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from corequeue.drivers.base import LEASE_EXPIRED, Channel, JobView
from corequeue.errors import DecodeError
from corequeue.job import PersistedJob, Progress, to_ms

LIST_WINDOW: Final = 500
"""Jobs one listing script reads when `list_jobs()` filters by type."""

UNREADABLE_TYPE: Final = "<unreadable>"
"""The type `list_jobs()` and `get_job()` show for a stored envelope they cannot read."""

LOST_TYPE: Final = "<lost>"
"""The type they show for a job parked in `failed` because its envelope was missing."""


def decode_job(envelope: bytes, lost_leases: bytes | None) -> PersistedJob:
    """Return the job of a stored envelope, with the leases it lost since it was written.

    Raises:
        DecodeError: The bytes are no envelope this release reads.
    """
    job = PersistedJob.from_bytes(envelope)
    if lost_leases is not None:
        job.attempts += int(lost_leases)
        job.last_error = LEASE_EXPIRED
    return job


def view(
    job_id: str,
    channel: Channel,
    envelope: bytes | None,
    lost: bytes | None,
    score: Any,
    progress: bytes | None = None,
    kept: bytes | None = None,
) -> JobView:
    """Return what inspection shows of one job: `envelope` as stored, `score` its channel's,
    `progress` as renewals stored it ("<fraction> <message>"), `kept` as an ack that kept the
    result stored it (see `kept_result`)."""
    shows_due = channel in (Channel.DELAYED, Channel.RESERVED, Channel.COMPLETED)
    due = _EPOCH + round(float(score)) * _MICROSECOND if shows_due else None
    if envelope is None or envelope.startswith(_LOST):
        why = "no envelope stored" if envelope is None else text(envelope[len(_LOST) :])
        return JobView(PersistedJob(job_id, LOST_TYPE, b"", last_error=why), channel, due)
    try:
        job = decode_job(envelope, lost)
    except DecodeError as exc:  # kept in `failed` by a pop that could not read it: show it
        job = PersistedJob(job_id, UNREADABLE_TYPE, envelope, last_error=str(exc))
    if progress is not None:
        job.progress = _progress(text(progress))
    if kept is not None:
        keep_ms, _, job.result = kept.partition(b":")
        job.keep_result = timedelta(milliseconds=int(keep_ms))
    return JobView(job, channel, due)


def kept_result(job: PersistedJob) -> bytes:
    """Return what the `results` hash keeps of a completed job: "<keep_result in ms>:<result>".

    Example:
        >>> kept_result(PersistedJob("a", "t", b"{}", keep_result=timedelta(hours=1), result=b"7"))
        b'3600000:7'
    """
    keep = to_ms(job.keep_result or timedelta(0))
    return b"%d:%s" % (keep, job.result if job.result is not None else b"null")


def _progress(stored: str) -> Progress | None:
    fraction, _, message = stored.partition(" ")
    try:
        return Progress(float(fraction), message)
    except ValueError:
        return None


def sixes(values: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Return a flat script reply as groups of six."""
    return [tuple(values[index : index + 6]) for index in range(0, len(values), 6)]


def text(value: bytes | str) -> str:
    """Return a reply as text (bytes that are not UTF-8 shown with replacement characters)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


_LOST: Final = b"lost:"  # lib.lua's LOST: what the `jobs` hash holds for such a job
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
