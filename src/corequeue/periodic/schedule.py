"""Schedules: when the slots of a periodic job fall, as instants in epoch milliseconds.

A schedule is a cron expression read in a time zone, or a `timedelta` interval aligned to the
Unix epoch. Both answer two questions about an instant: the latest slot at or before it, and
the first slot after it. Cron expressions are parsed and matched by `cronsim` on local wall
times (naive datetimes, so the library applies no DST rule of its own); this module then turns
each matching wall time into one instant by the rules below, the same for every expression:

- A wall time that a spring-forward skips (02:30 in Europe/Berlin on the last Sunday of March)
  runs at the first instant after the gap (03:00 local). Several skipped wall times fall on
  that one instant, and so make one slot.
- A wall time that a fall-back repeats (02:30 in Europe/Berlin on the last Sunday of October)
  runs once, at its first occurrence; the repeated hour runs nothing a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from corequeue.errors import InvalidOption, shown

CRON_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The `@name` forms a cron schedule takes, and the five fields each stands for."""

LONGEST_INTERVAL = timedelta(days=36_500)
"""The longest `timedelta` schedule."""

MAX_EXPRESSION_CHARS = 200
"""The longest cron expression."""


@runtime_checkable
class Schedule(Protocol):
    """When the slots of a periodic job fall; instants are milliseconds since the Unix epoch."""

    @property
    def source(self) -> str | timedelta:
        """The schedule as written: the cron expression, or the interval."""
        ...

    @property
    def zone(self) -> ZoneInfo:
        """The time zone slots are read in (and given to a job callable in)."""
        ...

    def latest_at_or_before(self, instant_ms: int) -> int | None:
        """Return the latest slot at or before `instant_ms`, or None if there is none."""
        ...

    def next_after(self, instant_ms: int) -> int | None:
        """Return the first slot after `instant_ms`, or None if there is none."""
        ...


def parse_schedule(schedule: str | timedelta, tz: str | ZoneInfo = "UTC") -> Schedule:
    """Return the schedule a cron expression or a `timedelta` describes, in time zone `tz`.

    Args:
        schedule: Five cron fields (minute hour day-of-month month day-of-week), six with
            seconds first, an `@name` of `CRON_NICKNAMES`, or a positive `timedelta` of whole
            milliseconds (slots at the multiples of it since the Unix epoch).
        tz: An IANA time zone name or a `ZoneInfo`; cron fields are read in it.

    Raises:
        InvalidOption: For an expression cronsim refuses or that never matches, an interval
            that is not positive or not whole milliseconds, or an unknown time zone.

    Example:
        >>> daily = parse_schedule("@daily", "Europe/Berlin")
        >>> slot = daily.next_after(0)
        >>> slot_datetime(slot, daily.zone).isoformat()
        '1970-01-02T00:00:00+01:00'
        >>> parse_schedule(timedelta(minutes=5)).latest_at_or_before(7 * 60_000)
        300000
    """
    zone = zone_named(tz)
    if isinstance(schedule, timedelta):
        return IntervalSchedule(schedule, zone)
    if isinstance(schedule, str):
        return CronSchedule(schedule, zone)
    raise InvalidOption(
        f"schedule must be a cron expression (str) or a timedelta, got {shown(schedule)}"
    )


def zone_named(tz: str | ZoneInfo) -> ZoneInfo:
    """Return the time zone `tz` names (an IANA name such as `Europe/Berlin`).

    Raises:
        InvalidOption: `tz` is not a ZoneInfo nor the name of a zone this system knows.
    """
    if isinstance(tz, ZoneInfo):
        return tz
    if not isinstance(tz, str) or not tz or "\x00" in tz:
        raise InvalidOption(f"tz must be an IANA time zone name, got {shown(tz)}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidOption(
            f"tz must be an IANA time zone name such as 'Europe/Berlin', got {shown(tz)} "
            "(unknown here; on Windows install tzdata)"
        ) from None


def slot_datetime(slot_ms: int, zone: ZoneInfo) -> datetime:
    """Return the slot at `slot_ms` as an aware datetime in `zone`.

    Example:
        >>> slot_datetime(0, ZoneInfo("America/New_York")).isoformat()
        '1969-12-31T19:00:00-05:00'
    """
    return (_EPOCH + timedelta(milliseconds=slot_ms)).astimezone(zone)


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Slots every `every`, at the multiples of it since the Unix epoch (whatever the zone).

    Example:
        >>> hourly = IntervalSchedule(timedelta(hours=1))
        >>> hourly.next_after(3_600_000), hourly.latest_at_or_before(3_599_999)
        (7200000, 0)
    """

    every: timedelta
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    def __post_init__(self) -> None:
        every = self.every
        if (
            not isinstance(every, timedelta)
            or every <= timedelta(0)
            or every > LONGEST_INTERVAL
            or every % _MILLISECOND
        ):
            raise InvalidOption(
                "an interval schedule must be a timedelta of whole milliseconds, more than 0 "
                f"and at most {LONGEST_INTERVAL.days} days, got {shown(every)}"
            )

    @property
    def source(self) -> timedelta:
        """The interval."""
        return self.every

    def latest_at_or_before(self, instant_ms: int) -> int:
        """Return the latest multiple of the interval at or before `instant_ms`."""
        step = self.every // _MILLISECOND
        return instant_ms // step * step

    def next_after(self, instant_ms: int) -> int:
        """Return the first multiple of the interval after `instant_ms`."""
        step = self.every // _MILLISECOND
        return (instant_ms // step + 1) * step


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """Slots at the local wall times a cron expression matches, in `zone`, by the DST rules.

    Example:
        >>> berlin = CronSchedule("30 2 * * *", ZoneInfo("Europe/Berlin"))
        >>> march_31 = datetime(2024, 3, 31, tzinfo=UTC)  # Berlin skips 02:00-03:00 that night
        >>> slot = berlin.next_after(int(march_31.timestamp() * 1000))
        >>> slot_datetime(slot, berlin.zone).isoformat()
        '2024-03-31T03:00:00+02:00'
    """

    expression: str
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    fields: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _cron_fields(self.expression))
        if self.next_after(_now_ms()) is None:
            raise InvalidOption(
                f"cron expression {self.expression!r} matches no time in the next 50 years"
            )

    @property
    def source(self) -> str:
        """The expression as written."""
        return self.expression

    def latest_at_or_before(self, instant_ms: int) -> int | None:
        """Return the latest slot at or before `instant_ms` (None: none in 50 years back)."""
        wall = self._wall_at(instant_ms)
        # cronsim strips the microseconds of a reverse start and then matches it inclusively.
        start = wall.replace(microsecond=0) + _MICROSECOND
        match = _first(CronSim(self.fields, start, reverse=True))
        return None if match is None else self._instant_ms(match)

    def next_after(self, instant_ms: int) -> int | None:
        """Return the first slot after `instant_ms` (None: none in the next 50 years)."""
        match = _first(CronSim(self.fields, self._wall_at(instant_ms)))
        return None if match is None else self._instant_ms(match)

    def _wall_at(self, instant_ms: int) -> datetime:
        """The latest local wall time (naive) whose slot is at or before `instant_ms`.

        In the second pass of a repeated hour, every wall time of that hour already had its
        slot (the first occurrence), so the answer is the last moment before the hour ends.
        """
        local = slot_datetime(instant_ms, self.zone)
        first = local.replace(fold=0)
        if local.fold and first.utcoffset() != local.utcoffset():
            return self._end_of_repeat(local) - _MICROSECOND
        return local.replace(tzinfo=None)

    def _end_of_repeat(self, local: datetime) -> datetime:
        """The wall time at which the repeated hour holding `local` (its second pass) ends."""
        earlier, later = _offset(local.replace(fold=0)), _offset(local)
        now_s = (local - _EPOCH) // _SECOND
        change_s = _first_second(self.zone, now_s - (earlier - later), now_s)
        return _naive_utc(change_s) + timedelta(seconds=earlier)

    def _instant_ms(self, wall: datetime) -> int:
        """The instant of wall time `wall`: its first occurrence, or the end of its gap."""
        aware = wall.replace(tzinfo=self.zone)
        instant = aware.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) == wall:
            return (instant - _EPOCH) // _MILLISECOND
        # A gap: fold=0 reads the wall with the offset before the change, fold=1 after it.
        before, after = _offset(aware), _offset(aware.replace(fold=1))
        wall_s = _epoch_s(wall)
        return _first_second(self.zone, wall_s - after, wall_s - before) * 1000


def _cron_fields(expression: object) -> str:
    """Return the cron fields `expression` stands for, checked by cronsim."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        raise InvalidOption(
            f"a cron expression must be a str of at most {MAX_EXPRESSION_CHARS} characters, "
            f"got {shown(expression)}"
        )
    fields = CRON_NICKNAMES.get(expression.strip().lower(), expression)
    if len(fields.split()) not in (5, 6):
        raise InvalidOption(
            f"a cron expression has 5 fields, or 6 with seconds first, or is one of "
            f"{', '.join(CRON_NICKNAMES)}; got {shown(expression)}"
        )
    try:
        CronSim(fields, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise InvalidOption(f"bad cron expression {expression!r}: {exc}") from None
    return fields


def _first(matches: CronSim) -> datetime | None:
    """The first match of a cronsim iterator; None when there is none within its 50 years."""
    try:
        return next(matches)
    except (StopIteration, OverflowError, ValueError):  # beyond datetime's years 1 to 9999
        return None


def _first_second(zone: ZoneInfo, low_s: int, high_s: int) -> int:
    """The first second after `low_s`, up to `high_s`, whose UTC offset is that of `high_s`.

    The offset at `low_s` differs from the one at `high_s`, and changes once between them
    (zone changes happen on whole seconds): a bisection finds the change.
    """
    target = _offset_at(zone, high_s)
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if _offset_at(zone, middle) == target:
            high_s = middle
        else:
            low_s = middle
    return high_s


def _offset_at(zone: ZoneInfo, epoch_s: int) -> int:
    return _offset(datetime.fromtimestamp(epoch_s, zone))


def _offset(aware: datetime) -> int:
    """The UTC offset of `aware` in whole seconds."""
    offset = aware.utcoffset()
    return 0 if offset is None else offset // _SECOND


def _epoch_s(naive_utc: datetime) -> int:
    return (naive_utc - _NAIVE_EPOCH) // _SECOND


def _naive_utc(epoch_s: int) -> datetime:
    return _NAIVE_EPOCH + timedelta(seconds=epoch_s)


def _now_ms() -> int:
    return (datetime.now(UTC) - _EPOCH) // _MILLISECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_MILLISECOND = timedelta(milliseconds=1)
_MICROSECOND = timedelta(microseconds=1)
