"""Schedules: cron forms, epoch-aligned intervals, and DST rules checked against an oracle."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corequeue.errors import InvalidOption
from corequeue.periodic import (
    CRON_NICKNAMES,
    CronSchedule,
    IntervalSchedule,
    parse_schedule,
    slot_datetime,
    zone_named,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE_MS = 60_000


def ms(instant: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return (instant - EPOCH) // timedelta(milliseconds=1)


def local(slot_ms: int | None, tz: str) -> str:
    """A slot as local ISO text with its offset, e.g. `2024-03-31T03:00:00+02:00`."""
    assert slot_ms is not None
    return slot_datetime(slot_ms, ZoneInfo(tz)).isoformat()


def slots_after(schedule: str, tz: str, start: datetime, count: int) -> list[str]:
    """The next `count` slots after `start`, as local ISO text."""
    parsed = parse_schedule(schedule, tz)
    found: list[str] = []
    instant = ms(start)
    for _ in range(count):
        slot = parsed.next_after(instant)
        assert slot is not None
        found.append(local(slot, tz))
        instant = slot
    return found


# --- cron forms --------------------------------------------------------------------------------


def test_five_fields_match_minutes_and_six_fields_take_seconds_first() -> None:
    start = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert slots_after("*/15 * * * *", "UTC", start, 2) == [
        "2024-01-01T12:15:00+00:00",
        "2024-01-01T12:30:00+00:00",
    ]
    assert slots_after("*/20 * * * * *", "UTC", start, 3) == [
        "2024-01-01T12:00:20+00:00",
        "2024-01-01T12:00:40+00:00",
        "2024-01-01T12:01:00+00:00",
    ]


def test_month_and_day_names_are_read_in_any_case() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday

    assert slots_after("0 9 * jan,Feb mon-wed", "UTC", start, 4) == [
        "2024-01-01T09:00:00+00:00",
        "2024-01-02T09:00:00+00:00",
        "2024-01-03T09:00:00+00:00",
        "2024-01-08T09:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("nickname", "first", "second"),
    [
        ("@yearly", "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        ("@annually", "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        ("@monthly", "2024-07-01T00:00:00+00:00", "2024-08-01T00:00:00+00:00"),
        ("@weekly", "2024-06-16T00:00:00+00:00", "2024-06-23T00:00:00+00:00"),
        ("@daily", "2024-06-13T00:00:00+00:00", "2024-06-14T00:00:00+00:00"),
        ("@midnight", "2024-06-13T00:00:00+00:00", "2024-06-14T00:00:00+00:00"),
        ("@HOURLY", "2024-06-12T13:00:00+00:00", "2024-06-12T14:00:00+00:00"),
    ],
)
def test_nicknames_stand_for_their_five_fields(nickname: str, first: str, second: str) -> None:
    start = datetime(2024, 6, 12, 12, 30, tzinfo=UTC)  # a Wednesday

    assert slots_after(nickname, "UTC", start, 2) == [first, second]


def test_every_nickname_is_documented_as_five_fields() -> None:
    assert all(len(fields.split()) == 5 for fields in CRON_NICKNAMES.values())


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "5 fields"),
        ("* * * *", "5 fields"),
        ("0 0 1 1 * 2024 *", "5 fields"),
        ("@reboot", "5 fields"),
        ("61 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("* * 0 * *", "Bad day-of-month"),
        ("* * * 13 *", "Bad month"),
        ("* * * * 8", "Bad day-of-week"),
        ("*/0 * * * *", "Bad minute"),
        ("60 * * * * *", "Bad second"),
        ("a b c d e", "Bad minute"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("* * */20 * 1L", "matches no time"),
    ],
)
def test_bad_cron_expressions_are_invalid_options(expression: str, says: str) -> None:
    with pytest.raises(InvalidOption, match=says):
        parse_schedule(expression)


@pytest.mark.parametrize("value", [None, 5, 1.5, b"* * * * *", ["* * * * *"], "x" * 201])
def test_a_schedule_that_is_no_expression_nor_interval_is_an_invalid_option(
    value: object,
) -> None:
    with pytest.raises(InvalidOption):
        parse_schedule(value)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(
    text=st.text(alphabet=st.sampled_from("0123456789*/,-LW#? @abcdefhimnorstuwyJMS\t¹"))
    | st.text(max_size=30)
)
def test_any_text_is_a_schedule_or_an_invalid_option(text: str) -> None:
    try:
        schedule = parse_schedule(text)
    except InvalidOption as exc:
        refused = str(exc)
    else:
        refused = ""
        slot = schedule.next_after(0)
        assert slot is None or slot > 0
    assert "\n" not in refused


# --- intervals ---------------------------------------------------------------------------------


def test_intervals_are_aligned_to_the_unix_epoch_whatever_the_zone() -> None:
    every = parse_schedule(timedelta(minutes=5), "America/New_York")
    instant = ms(datetime(2024, 5, 1, 10, 7, 30, tzinfo=UTC))

    assert every.latest_at_or_before(instant) == ms(datetime(2024, 5, 1, 10, 5, tzinfo=UTC))
    assert every.next_after(instant) == ms(datetime(2024, 5, 1, 10, 10, tzinfo=UTC))
    assert every.latest_at_or_before(ms(datetime(2024, 5, 1, 10, 10, tzinfo=UTC))) == ms(
        datetime(2024, 5, 1, 10, 10, tzinfo=UTC)
    )


def test_an_interval_slot_is_given_in_the_schedules_zone() -> None:
    every = parse_schedule(timedelta(days=1), "America/New_York")

    assert local(every.next_after(0), "America/New_York") == "1970-01-01T19:00:00-05:00"


@pytest.mark.parametrize(
    "every",
    [
        timedelta(0),
        timedelta(seconds=-1),
        timedelta(microseconds=1500),
        timedelta(days=36_501),
    ],
)
def test_an_interval_not_positive_or_not_whole_milliseconds_is_an_invalid_option(
    every: timedelta,
) -> None:
    with pytest.raises(InvalidOption, match="interval"):
        IntervalSchedule(every)


# --- time zones and DST ------------------------------------------------------------------------


def test_an_unknown_time_zone_is_an_invalid_option() -> None:
    for tz in ["Mars/Olympus", "", "../../etc/passwd", "Europe/Berlin\x00", 1]:
        with pytest.raises(InvalidOption, match="tz"):
            zone_named(tz)  # type: ignore[arg-type]


def test_a_time_a_spring_forward_skips_runs_at_the_first_instant_after_the_gap() -> None:
    # Berlin jumps from 02:00 to 03:00 on 31 March 2024; New York on 10 March 2024.
    assert slots_after("30 2 * * *", "Europe/Berlin", datetime(2024, 3, 30, tzinfo=UTC), 3) == [
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00",
    ]
    assert slots_after("30 2 * * *", "America/New_York", datetime(2024, 3, 9, tzinfo=UTC), 3) == [
        "2024-03-09T02:30:00-05:00",
        "2024-03-10T03:00:00-04:00",
        "2024-03-11T02:30:00-04:00",
    ]


def test_the_skipped_times_of_a_gap_make_one_slot_with_the_first_time_after_it() -> None:
    start = datetime(2024, 3, 31, 0, 30, tzinfo=UTC)  # 01:30 in Berlin

    assert slots_after("*/20 * * * *", "Europe/Berlin", start, 4) == [
        "2024-03-31T01:40:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:20:00+02:00",
        "2024-03-31T03:40:00+02:00",
    ]


def test_a_time_a_fall_back_repeats_runs_once_at_its_first_occurrence() -> None:
    # Berlin repeats 02:00-03:00 on 27 October 2024; New York repeats 01:00-02:00 on 3 November.
    assert slots_after("30 2 * * *", "Europe/Berlin", datetime(2024, 10, 26, tzinfo=UTC), 3) == [
        "2024-10-26T02:30:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
    ]
    assert slots_after(
        "0 * * * *", "America/New_York", datetime(2024, 11, 3, 4, tzinfo=UTC), 3
    ) == [
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T02:00:00-05:00",
        "2024-11-03T03:00:00-05:00",
    ]


def test_in_a_repeated_hour_the_next_slot_follows_it_and_the_latest_is_in_its_first_pass() -> None:
    berlin = parse_schedule("*/20 * * * *", "Europe/Berlin")
    second_pass = ms(datetime(2024, 10, 27, 1, 30, tzinfo=UTC))  # 02:30+01:00, again

    assert local(berlin.next_after(second_pass), "Europe/Berlin") == "2024-10-27T03:00:00+01:00"
    assert local(berlin.latest_at_or_before(second_pass), "Europe/Berlin") == (
        "2024-10-27T02:40:00+02:00"
    )


def test_a_cron_schedule_in_utc_has_no_dst_rules() -> None:
    start = datetime(2024, 3, 31, 0, 30, tzinfo=UTC)

    assert slots_after("0 * * * *", "UTC", start, 3) == [
        "2024-03-31T01:00:00+00:00",
        "2024-03-31T02:00:00+00:00",
        "2024-03-31T03:00:00+00:00",
    ]


# The oracle: walk every minute of a window; a wall time that matches runs at the first minute
# showing it, and the wall times a jump skips run at the minute after the jump.

CASES: dict[str, Callable[[datetime], bool]] = {
    "30 2 * * *": lambda wall: wall.hour == 2 and wall.minute == 30,
    "*/20 * * * *": lambda wall: wall.minute % 20 == 0,
    "0 * * * *": lambda wall: wall.minute == 0,
    "15,45 1-3 * * *": lambda wall: wall.minute in (15, 45) and 1 <= wall.hour <= 3,
    "0 1 * * *": lambda wall: wall.hour == 1 and wall.minute == 0,
}
TRANSITIONS = {
    "Europe/Berlin": [
        datetime(2024, 3, 29, 12, tzinfo=UTC),
        datetime(2024, 10, 25, 12, tzinfo=UTC),
    ],
    "America/New_York": [
        datetime(2024, 3, 8, 12, tzinfo=UTC),
        datetime(2024, 11, 1, 12, tzinfo=UTC),
    ],
    "Australia/Lord_Howe": [datetime(2024, 4, 5, tzinfo=UTC), datetime(2024, 10, 4, tzinfo=UTC)],
}
"""Zones (one with a 30 minute shift) and the start of a window holding each of their changes."""
WINDOW_MINUTES = 72 * 60
NEAR_CHANGES = (34 * 60, 46 * 60)
"""Minutes into each window between which its change falls (a day of slots either side)."""


@functools.cache
def oracle_slots(expression: str, tz: str, start: datetime) -> list[int]:
    matches = CASES[expression]
    zone = ZoneInfo(tz)
    slots: list[int] = []
    seen: set[datetime] = set()
    previous = start.astimezone(zone).replace(tzinfo=None)
    for minute in range(1, WINDOW_MINUTES):
        instant = start + timedelta(minutes=minute)
        wall = instant.astimezone(zone).replace(tzinfo=None)
        skipped = previous + timedelta(minutes=1)
        while skipped < wall:  # a jump forward: these wall times never show
            if matches(skipped):
                slots.append(ms(instant))
            skipped += timedelta(minutes=1)
        if matches(wall) and wall not in seen:
            slots.append(ms(instant))
        seen.add(wall)
        previous = wall
    return sorted(set(slots))


@pytest.mark.parametrize("expression", list(CASES))
@pytest.mark.parametrize(
    ("tz", "start"), [(tz, start) for tz, starts in TRANSITIONS.items() for start in starts]
)
def test_slots_around_transitions_match_the_minute_by_minute_oracle(
    expression: str, tz: str, start: datetime
) -> None:
    expected = oracle_slots(expression, tz, start)
    schedule = parse_schedule(expression, tz)

    found: list[int] = []
    slot = schedule.next_after(ms(start) + MINUTE_MS)
    while slot is not None and slot < ms(start) + WINDOW_MINUTES * MINUTE_MS:
        found.append(slot)
        slot = schedule.next_after(slot)

    assert found == [slot for slot in expected if slot > ms(start) + MINUTE_MS]


@settings(max_examples=200, deadline=None)
@given(
    expression=st.sampled_from(list(CASES)),
    tz_start=st.sampled_from(
        [(tz, start) for tz, starts in TRANSITIONS.items() for start in starts]
    ),
    offset_us=st.integers(min_value=2 * 60_000_000, max_value=(WINDOW_MINUTES - 120) * 60_000_000)
    | st.integers(min_value=NEAR_CHANGES[0] * 60_000_000, max_value=NEAR_CHANGES[1] * 60_000_000),
)
def test_next_and_latest_slot_of_any_instant_agree_with_the_oracle(
    expression: str, tz_start: tuple[str, datetime], offset_us: int
) -> None:
    tz, start = tz_start
    slots = oracle_slots(expression, tz, start)
    instant_ms = ms(start) + offset_us // 1000
    schedule = parse_schedule(expression, tz)

    later = [slot for slot in slots if slot > instant_ms]
    earlier = [slot for slot in slots if slot <= instant_ms]
    if later:
        assert schedule.next_after(instant_ms) == later[0]
    if earlier:
        assert schedule.latest_at_or_before(instant_ms) == earlier[-1]


@pytest.mark.parametrize("expression", list(CASES))
@pytest.mark.parametrize(
    ("tz", "start"), [(tz, start) for tz, starts in TRANSITIONS.items() for start in starts]
)
def test_next_and_latest_slot_agree_with_the_oracle_every_few_minutes_around_the_change(
    expression: str, tz: str, start: datetime
) -> None:
    slots = oracle_slots(expression, tz, start)
    schedule = parse_schedule(expression, tz)
    step_ms = 4 * MINUTE_MS + 37_000

    for instant_ms in range(
        ms(start) + NEAR_CHANGES[0] * MINUTE_MS, ms(start) + NEAR_CHANGES[1] * MINUTE_MS, step_ms
    ):
        assert schedule.next_after(instant_ms) == min(s for s in slots if s > instant_ms)
        assert schedule.latest_at_or_before(instant_ms) == max(s for s in slots if s <= instant_ms)


def test_a_slot_is_its_own_latest_and_not_its_own_next() -> None:
    schedule = CronSchedule("0 7 * * *", ZoneInfo("Europe/Berlin"))
    slot = ms(datetime(2024, 6, 1, 5, tzinfo=UTC))

    assert schedule.latest_at_or_before(slot) == slot
    assert schedule.latest_at_or_before(slot - 1) == slot - 86_400_000
    assert schedule.next_after(slot) == slot + 86_400_000
    assert schedule.next_after(slot - 1) == slot
