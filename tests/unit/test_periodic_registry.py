"""The schedule registry: what `periodic()` accepts, slot ids, and what operators see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from corequeue.errors import InvalidOption
from corequeue.job import adjust
from corequeue.periodic import (
    PeriodicInfo,
    Schedules,
    parse_slot_job_id,
    slot_job_id,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(milliseconds=1)


def test_schedules_keep_their_entries_by_name_in_the_order_added() -> None:
    schedules = Schedules()

    schedules.add("0 3 * * *", "vacuum", name="nightly", tz="Europe/Berlin", misfire="once")
    schedules.add(timedelta(seconds=30), {"ping": True}, name="heartbeat")

    assert [entry.name for entry in schedules] == ["nightly", "heartbeat"]
    assert len(schedules) == 2
    assert "nightly" in schedules
    nightly = schedules.get("nightly")
    assert nightly is not None
    assert (nightly.misfire, nightly.schedule.zone, nightly.job) == (
        "once",
        ZoneInfo("Europe/Berlin"),
        "vacuum",
    )
    assert schedules.get("nope") is None


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"schedule": "61 * * * *"}, "Bad minute"),
        ({"schedule": "* * * *"}, "5 fields"),
        ({"schedule": timedelta(0)}, "interval"),
        ({"schedule": timedelta(seconds=-5)}, "interval"),
        ({"schedule": 60}, "cron expression"),
        ({"tz": "Europe/Atlantis"}, "tz must be an IANA time zone name"),
        ({"name": ""}, "name must be"),
        ({"name": "   "}, "name must be"),
        ({"name": "a:b"}, "without ':'"),
        ({"name": "x" * 201}, "name must be"),
        ({"name": "nul\x00"}, "name must be"),
        ({"name": 7}, "name must be"),
        ({"misfire": "all"}, "misfire must be one of skip, once"),
        ({"misfire": None}, "misfire must be one of skip, once"),
        ({"job": adjust("x", defer=timedelta(seconds=1))}, "defer"),
        ({"job": adjust("x", unique_id="mine")}, "unique_id"),
    ],
)
def test_add_refuses_what_cannot_make_a_schedule(arguments: dict[str, Any], says: str) -> None:
    call: dict[str, Any] = {"schedule": "* * * * *", "job": "x", "name": "n", **arguments}
    schedule, job = call.pop("schedule"), call.pop("job")

    with pytest.raises(InvalidOption, match=says) as raised:
        Schedules().add(schedule, job, **call)

    assert str(raised.value).startswith("periodic(): ")


def test_a_name_may_be_declared_once_per_queue() -> None:
    schedules = Schedules()
    schedules.add("@hourly", "a", name="report")

    with pytest.raises(InvalidOption, match="already declared"):
        schedules.add("@daily", "b", name="report")
    assert [entry.schedule.source for entry in schedules] == ["@hourly"]


def test_an_adjusted_job_keeps_its_other_options() -> None:
    entry = Schedules().add("@daily", adjust("x", max_attempts=3), name="n")

    assert entry.job.max_attempts == 3
    assert not entry.is_factory


def test_a_callable_is_a_factory_and_a_job_value_is_not() -> None:
    schedules = Schedules()

    assert schedules.add("@daily", lambda slot: slot.day, name="f").is_factory
    assert not schedules.add("@daily", adjust("x"), name="v").is_factory


def test_slot_ids_name_the_schedule_and_the_slot_and_read_back() -> None:
    assert slot_job_id("nightly", 1_700_000_000_000) == "periodic:nightly:1700000000000"
    assert parse_slot_job_id("periodic:nightly:1700000000000") == ("nightly", 1_700_000_000_000)
    for other in ["3f2a9c", "periodic:", "periodic::5", "periodic:x:", "periodic:x:1.5"]:
        assert parse_slot_job_id(other) is None


def test_info_shows_the_next_run_in_the_zone_and_the_stores_last_run() -> None:
    schedules = Schedules()
    schedules.add("0 7 * * *", "wake", name="alarm", tz="Europe/Berlin", misfire="once")
    schedules.add(timedelta(minutes=10), "tick", name="tick")
    now = ms(datetime(2024, 6, 1, 12, 34, tzinfo=UTC))
    last = ms(datetime(2024, 6, 1, 5, 0, tzinfo=UTC))

    alarm, tick = schedules.infos(now, {"alarm": last, "removed": 1})

    berlin = ZoneInfo("Europe/Berlin")
    assert alarm == PeriodicInfo(
        name="alarm",
        schedule="0 7 * * *",
        next_run=datetime(2024, 6, 2, 7, 0, tzinfo=berlin),
        tz="Europe/Berlin",
        misfire="once",
        last_run=datetime(2024, 6, 1, 7, 0, tzinfo=berlin),
    )
    assert alarm.next_run is not None
    assert alarm.next_run.utcoffset() == timedelta(hours=2)
    assert tick.schedule == timedelta(minutes=10)
    assert tick.next_run == datetime(2024, 6, 1, 12, 40, tzinfo=UTC)
    assert tick.last_run is None


def test_next_run_follows_a_last_run_that_is_ahead_of_the_clock() -> None:
    schedules = Schedules()
    schedules.add(timedelta(minutes=1), "x", name="m")
    now = ms(datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC))
    ahead = ms(datetime(2024, 6, 1, 12, 5, tzinfo=UTC))  # a worker with a clock running fast

    (info,) = schedules.infos(now, {"m": ahead})

    assert info.next_run == datetime(2024, 6, 1, 12, 6, tzinfo=UTC)


def test_periodic_info_is_a_frozen_value() -> None:
    info = PeriodicInfo("a", "* * * * *", None)

    with pytest.raises(AttributeError):
        info.name = "b"  # type: ignore[misc]
    assert info == PeriodicInfo("a", "* * * * *", None, tz="UTC", misfire="skip", last_run=None)
