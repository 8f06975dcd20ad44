"""The schedules a worker declares: `Schedules`, its entries, and what operators see of them.

`Schedules.add()` checks every argument at the call, so a worker with a bad schedule stops at
start-up rather than at its first slot. Each slot's job gets the id `periodic:<name>:<slot ms>`,
which is why a name holds no `:`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo

from corequeue.errors import InvalidOption, is_clean_text, shown
from corequeue.job import AdjustedJob, is_job
from corequeue.periodic.schedule import Schedule, parse_schedule, slot_datetime

Misfire = Literal["skip", "once"]
"""What happens to slots that passed while no worker ran: dropped, or one catch-up job."""

MISFIRE_POLICIES: Final[tuple[str, ...]] = get_args(Misfire)

MAX_NAME_CHARS: Final = 200
"""The longest schedule name."""

JOB_ID_PREFIX: Final = "periodic:"
"""How the id of every periodic job starts: `periodic:<name>:<slot ms>`."""

JobFactory = Callable[[datetime], Any]
"""A callable that makes a slot's job from the slot's aware datetime (it may be async)."""


@dataclass(frozen=True, slots=True)
class PeriodicInfo:
    """One schedule as `queue.periodic_schedules()`, the CLI and the dashboard show it.

    Attributes:
        name: The schedule's name.
        schedule: The cron expression or the interval, as declared.
        next_run: The next slot after now (aware, in the schedule's zone); None if there is
            none within 50 years.
        tz: The time zone name.
        misfire: `skip` or `once`.
        last_run: The latest slot the store says was enqueued, by any worker; None if none.

    Example:
        >>> from datetime import UTC
        >>> info = PeriodicInfo("report", "0 7 * * *", datetime(2024, 1, 1, 7, tzinfo=UTC))
        >>> info.next_run.hour, info.last_run
        (7, None)
    """

    name: str
    schedule: str | timedelta
    next_run: datetime | None
    tz: str = "UTC"
    misfire: str = "skip"
    last_run: datetime | None = None


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """One declared schedule: when (`schedule`), what (`job`), and how misfires are handled.

    Attributes:
        name: Unique among the queue's schedules; part of every slot's job id.
        schedule: When the slots fall.
        job: The job (any value `dispatch` takes), or a callable given the slot's aware
            datetime (in the schedule's zone) that returns one; it may be async.
        misfire: `skip` or `once`.
    """

    name: str
    schedule: Schedule
    job: Any
    misfire: Misfire = "skip"

    @property
    def is_factory(self) -> bool:
        """Whether `job` is a callable that makes each slot's job (rather than the job)."""
        return callable(self.job) and not is_job(self.job)

    def job_id(self, slot_ms: int) -> str:
        """Return the id of the job of the slot at `slot_ms`."""
        return slot_job_id(self.name, slot_ms)

    def info(self, now_ms: int, last_slot_ms: int | None) -> PeriodicInfo:
        """Return what operators see of this schedule at `now_ms`, given the store's last slot."""
        zone = self.schedule.zone
        after = now_ms if last_slot_ms is None else max(now_ms, last_slot_ms)
        upcoming = self.schedule.next_after(after)
        return PeriodicInfo(
            name=self.name,
            schedule=self.schedule.source,
            next_run=None if upcoming is None else slot_datetime(upcoming, zone),
            tz=zone.key or str(zone),
            misfire=self.misfire,
            last_run=None if last_slot_ms is None else slot_datetime(last_slot_ms, zone),
        )


class Schedules:
    """The periodic jobs of one queue, by name, in the order they were added.

    Example:
        >>> schedules = Schedules()
        >>> nightly = schedules.add("0 3 * * *", "vacuum", name="nightly", tz="Europe/Berlin")
        >>> [entry.name for entry in schedules], nightly.schedule.zone.key
        (['nightly'], 'Europe/Berlin')
        >>> schedules.add("0 3 * * *", "again", name="nightly")
        Traceback (most recent call last):
        ...
        corequeue.errors.InvalidOption: periodic(): a schedule named 'nightly' is already \
declared on this queue
    """

    def __init__(self) -> None:
        self._entries: dict[str, PeriodicJob] = {}

    def add(
        self,
        schedule: str | timedelta,
        job: Any,
        *,
        name: str,
        tz: str | ZoneInfo = "UTC",
        misfire: str = "skip",
    ) -> PeriodicJob:
        """Declare a periodic job; return its entry.

        Args:
            schedule: A cron expression (5 fields, or 6 with seconds first, or an `@name`
                such as `@hourly`) or a `timedelta` (slots aligned to the Unix epoch).
            job: The job, or a callable given the slot's aware datetime that returns one.
            name: 1 to 200 characters, no `:`; unique on the queue.
            tz: The IANA time zone cron fields are read in (and the callable's datetime is in).
            misfire: `skip` drops slots missed while no worker ran; `once` runs one catch-up
                job for them.

        Raises:
            InvalidOption: For a bad expression or interval, an unknown zone, a bad or
                duplicate name, an unknown misfire policy, or a job adjusted to be deferred
                or given its own id (a slot says when it runs and what its id is).
        """
        checked = check_name(name)
        if checked in self._entries:
            raise InvalidOption(
                f"periodic(): a schedule named {checked!r} is already declared on this queue"
            )
        entry = PeriodicJob(
            name=checked,
            schedule=_parsed(schedule, tz),
            job=check_job(job),
            misfire=check_misfire(misfire),
        )
        self._entries[checked] = entry
        return entry

    def __iter__(self) -> Iterator[PeriodicJob]:
        return iter(tuple(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> PeriodicJob | None:
        """Return the schedule called `name`, or None."""
        return self._entries.get(name)

    def infos(self, now_ms: int, last_slots: Mapping[str, int]) -> list[PeriodicInfo]:
        """Return every schedule as operators see it, given the store's last slots by name."""
        return [entry.info(now_ms, last_slots.get(entry.name)) for entry in self]


def slot_job_id(name: str, slot_ms: int) -> str:
    """Return the job id of the slot at `slot_ms` of schedule `name`.

    Example:
        >>> slot_job_id("nightly", 1_700_000_000_000)
        'periodic:nightly:1700000000000'
    """
    return f"{JOB_ID_PREFIX}{name}:{slot_ms}"


def parse_slot_job_id(job_id: str) -> tuple[str, int] | None:
    """Return the schedule name and slot of a periodic job's id, or None for any other id.

    Example:
        >>> parse_slot_job_id("periodic:nightly:1700000000000")
        ('nightly', 1700000000000)
        >>> parse_slot_job_id("3f2a") is None
        True
    """
    if not job_id.startswith(JOB_ID_PREFIX):
        return None
    name, _, slot = job_id[len(JOB_ID_PREFIX) :].rpartition(":")
    if not name or not slot.isdigit():
        return None
    return name, int(slot)


def check_name(name: object) -> str:
    """Return `name` if it can name a schedule; raise InvalidOption saying why not."""
    if (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > MAX_NAME_CHARS
        or ":" in name
        or not is_clean_text(name)
    ):
        raise InvalidOption(
            f"periodic(): name must be a str of 1 to {MAX_NAME_CHARS} characters without ':' "
            f"or NUL (it is part of each slot's job id), got {shown(name)}"
        )
    return name


def check_misfire(misfire: object) -> Misfire:
    """Return `misfire` if it is a known policy; raise InvalidOption otherwise."""
    if misfire == "skip" or misfire == "once":
        return misfire
    raise InvalidOption(
        f"periodic(): misfire must be one of {', '.join(MISFIRE_POLICIES)}, got {shown(misfire)}"
    )


def check_job(job: Any) -> Any:
    """Return `job` if it can be a periodic job; refuse one adjusted to run late or keep an id."""
    if isinstance(job, AdjustedJob) and (
        job.defer_by is not None or job.schedule_at is not None or job.unique_id is not None
    ):
        raise InvalidOption(
            "periodic(): the job may not be adjusted with defer, schedule_at or unique_id: "
            "its slot says when it runs, and its id is periodic:<name>:<slot ms>"
        )
    return job


def _parsed(schedule: str | timedelta, tz: str | ZoneInfo) -> Schedule:
    """`parse_schedule`, its errors prefixed like the others of `periodic()`."""
    try:
        return parse_schedule(schedule, tz)
    except InvalidOption as exc:
        raise InvalidOption(f"periodic(): {exc}") from None
