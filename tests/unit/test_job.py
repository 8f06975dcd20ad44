"""job_from, adjust and the persisted envelope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

import corequeue as cq
from corequeue.errors import DecodeError
from corequeue.job import ENVELOPE_VERSION, AdjustedJob, PersistedJob, to_ms


@dataclass
class SendEmail:
    to: str


def test_job_from_names_the_type_by_module_and_qualname() -> None:
    job = cq.job_from(SendEmail("a@example.com"))

    assert job.type == f"{__name__}.SendEmail"
    assert job.data == SendEmail("a@example.com")


def test_job_from_names_builtins_by_module_too() -> None:
    assert cq.job_from(100).type == "builtins.int"
    assert cq.job_from("x").type == "builtins.str"


def test_job_from_accepts_an_explicit_type_name() -> None:
    assert cq.job_from({"a": 1}, type_name="orders.Created").type == "orders.Created"


def test_any_object_with_type_and_data_is_a_job() -> None:
    @dataclass
    class Custom:
        type: str
        data: int

    assert isinstance(Custom("t", 1), cq.Job)


def test_adjust_wraps_a_plain_value_with_job_from() -> None:
    adjusted = cq.adjust(SendEmail("a@example.com"), max_attempts=3)

    assert adjusted.type == f"{__name__}.SendEmail"
    assert isinstance(adjusted, cq.DeferrableJob)


def test_adjust_decorates_the_envelope() -> None:
    adjusted = cq.adjust(
        cq.job_from(1), max_attempts=5, timeout=timedelta(seconds=30), unique_id="welcome-42"
    )
    persisted = PersistedJob(id="generated", type="builtins.int", value=b"1")

    adjusted.decorate(persisted)

    assert (persisted.id, persisted.max_attempts, persisted.handle_timeout) == (
        "welcome-42",
        5,
        timedelta(seconds=30),
    )


def test_adjust_defer_is_the_delay() -> None:
    assert cq.adjust(1, defer=timedelta(days=30)).defer() == timedelta(days=30)
    assert cq.adjust(1).defer() == timedelta(0)


def test_schedule_at_defers_until_that_instant() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)

    delay = cq.adjust(1, schedule_at=later).defer()

    assert timedelta(minutes=59) < delay <= timedelta(hours=1)


def test_naive_schedule_at_is_taken_as_utc() -> None:
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None)

    adjusted = cq.adjust(1, schedule_at=naive)

    assert adjusted.schedule_at is not None
    assert adjusted.schedule_at.tzinfo is UTC


def test_schedule_at_in_the_past_runs_at_once() -> None:
    assert cq.adjust(1, schedule_at=datetime(2000, 1, 1, tzinfo=UTC)).defer() == timedelta(0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"defer": timedelta(1), "schedule_at": datetime.now(UTC)}, "not both"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"timeout": timedelta(0)}, "timeout"),
        ({"timeout": timedelta(seconds=-1)}, "timeout"),
        ({"defer": timedelta(seconds=-1)}, "defer"),
        ({"unique_id": ""}, "unique_id"),
    ],
)
def test_adjust_rejects_invalid_options_with_value_error(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cq.adjust(1, **options)  # type: ignore[arg-type]


WRONG_OPTIONS = [
    ("max_attempts", 1.5, "an int from 1 to 2147483647, got 1.5 (float)"),
    ("max_attempts", 2.0, "an int from 1 to 2147483647, got 2.0 (float)"),
    ("max_attempts", "3", "an int from 1 to 2147483647, got '3' (str)"),
    ("max_attempts", True, "got True (bool)"),
    ("max_attempts", 2**31, "an int from 1 to 2147483647"),
    ("unique_id", 123, "a str of 1 to 1000 characters, got 123 (int)"),
    ("unique_id", b"welcome", "got b'welcome' (bytes)"),
    ("unique_id", "x" * 1001, "a str of 1 to 1000 characters"),
    ("unique_id", "a\x00b", "without NUL characters"),
    ("unique_id", "a\ud800b", "lone surrogates"),
    ("timeout", 5, "a timedelta, got 5 (int)"),
    ("timeout", 5.0, "a timedelta, got 5.0 (float)"),
    ("timeout", timedelta(days=36_501), "at most 36500 days"),
    ("defer", 5, "a timedelta, got 5 (int)"),
    ("defer", timedelta(days=36_501), "at most 36500 days"),
    ("schedule_at", "2030-01-01", "a datetime, got '2030-01-01' (str)"),
    ("schedule_at", 1_900_000_000, "a datetime, got 1900000000 (int)"),
    ("schedule_at", datetime(9999, 1, 1, tzinfo=UTC), "at most 36500 days ahead"),
    ("priority", 101, "an int from -100 to 100, got 101 (int)"),
    ("priority", -101, "an int from -100 to 100"),
    ("priority", 1.0, "got 1.0 (float)"),
    ("priority", False, "got False (bool)"),
    ("group", "", "a str of 1 to 200 characters"),
    ("group", "g" * 201, "a str of 1 to 200 characters"),
    ("group", 7, "got 7 (int)"),
    ("keep_result", 60, "a timedelta, got 60 (int)"),
    ("keep_result", timedelta(seconds=-1), "a timedelta of at least 0"),
]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    WRONG_OPTIONS,
    ids=[f"{n}={v!r:.20}" for n, v, _ in WRONG_OPTIONS],
)
def test_adjust_refuses_wrong_types_and_ranges_naming_the_argument(
    name: str, value: object, expected: str
) -> None:
    with pytest.raises(cq.InvalidOption) as raised:
        cq.adjust(1, **{name: value})  # type: ignore[arg-type]

    assert str(raised.value).startswith(f"adjust(): {name} must be ")
    assert expected in str(raised.value)


def test_adjust_refuses_a_job_whose_type_is_not_a_string() -> None:
    @dataclass
    class Event:
        type: int
        data: str

    with pytest.raises(cq.InvalidOption, match=r"job\.type must be a non-empty str"):
        cq.adjust(Event(3, "x"))


def test_adjust_error_survives_a_value_whose_repr_raises() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    with pytest.raises(cq.InvalidOption, match=r"got <unprintable> \(Hostile\)"):
        cq.adjust(1, max_attempts=Hostile())  # type: ignore[arg-type]


def test_adjust_accepts_the_edges_of_every_range() -> None:
    adjusted = cq.adjust(
        1,
        defer=timedelta(days=36_500),
        max_attempts=2**31 - 1,
        timeout=timedelta(microseconds=1),
        unique_id="x" * 1000,
        priority=-100,
        group="g" * 200,
        keep_result=timedelta(0),
    )

    assert adjusted.max_attempts == 2**31 - 1
    assert (adjusted.priority, adjusted.group, adjusted.keep_result) == (
        -100,
        "g" * 200,
        timedelta(0),
    )


def test_adjust_stores_priority_group_and_keep_result_and_merges_them() -> None:
    first = cq.adjust(1, priority=100, group="tenant-7", keep_result=timedelta(hours=1))

    second = cq.adjust(first, max_attempts=2)
    third = cq.adjust(second, priority=-5)

    assert (second.priority, second.group, second.keep_result) == (
        100,
        "tenant-7",
        timedelta(hours=1),
    )
    assert (third.priority, third.group, third.max_attempts) == (-5, "tenant-7", 2)
    assert cq.adjust(1).priority == 0
    assert cq.adjust(1).group is None


def test_a_new_time_replaces_the_old_one_of_either_kind() -> None:
    at = datetime.now(UTC) + timedelta(hours=2)
    scheduled = cq.adjust(1, schedule_at=at)

    deferred = cq.adjust(scheduled, defer=timedelta(seconds=3))
    rescheduled = cq.adjust(deferred, schedule_at=at)

    assert (deferred.schedule_at, deferred.defer()) == (None, timedelta(seconds=3))
    assert (rescheduled.defer_by, rescheduled.schedule_at) == (None, at)


def test_adjust_of_an_adjusted_job_merges_options() -> None:
    first = cq.adjust(1, max_attempts=3, defer=timedelta(seconds=5))

    second = cq.adjust(first, timeout=timedelta(seconds=9))

    assert isinstance(second, AdjustedJob)
    assert (second.max_attempts, second.timeout, second.defer()) == (
        3,
        timedelta(seconds=9),
        timedelta(seconds=5),
    )


def test_persisted_job_defaults_match_the_spec() -> None:
    job = PersistedJob(id="a", type="t", value=b"")

    assert job.handle_timeout == timedelta(hours=1)
    assert (job.attempts, job.max_attempts, job.backoff, job.last_error) == (
        1,
        1,
        timedelta(0),
        None,
    )


def test_persisted_job_is_itself_a_job() -> None:
    job = PersistedJob(id="a", type="t", value=b"x")

    assert isinstance(job, cq.Job)
    assert (job.type, job.data) == ("t", b"x")


@pytest.mark.parametrize("value", [b'{"to":"a"}', b"\x80\x81 binary", b""])
def test_envelope_round_trips(value: bytes) -> None:
    job = PersistedJob(
        id="a",
        type="t",
        value=value,
        handle_timeout=timedelta(seconds=3),
        backoff=timedelta(milliseconds=1500),
        attempts=2,
        max_attempts=4,
        last_error="boom",
    )

    assert PersistedJob.from_bytes(job.to_bytes()) == job


def test_envelope_carries_its_version() -> None:
    assert b'"v":%d' % ENVELOPE_VERSION in PersistedJob(id="a", type="t", value=b"1").to_bytes()


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage", b'{"v":1', b'{"v":99,"id":"a","type":"t","handle_timeout_ms":1,'
     b'"attempts":1,"max_attempts":1,"value":"1"}', b'{"v":1,"id":"a"}'],
)  # fmt: skip
def test_bad_envelopes_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(cq.DecodeError):
        PersistedJob.from_bytes(raw)


# An envelope as a newer release might write it: fields this release does not know.
NEWER = (
    b'{"v":2,"id":"a","type":"t","handle_timeout_ms":1000,"attempts":1,"max_attempts":3,'
    b'"value":"{}","headers":{"traceparent":"00-4bf9-00f0-01"},"priority":7,"group":"acme",'
    b'"labels":{"team":"billing"}}'
)


def test_envelope_version_2_is_written_and_1_and_2_are_read() -> None:
    version_1 = (
        b'{"v":1,"id":"a","type":"t","handle_timeout_ms":1000,"attempts":2,"max_attempts":3,'
        b'"value":"x","backoff_ms":1500}'
    )

    job = PersistedJob.from_bytes(version_1)

    assert ENVELOPE_VERSION == 2
    assert (job.attempts, job.backoff, job.extra) == (2, timedelta(milliseconds=1500), {})
    assert job.to_bytes().startswith(b'{"v":2,')
    assert PersistedJob.from_bytes(version_1.replace(b'"v":1', b'"v":2')) == job


def test_envelope_keeps_fields_it_does_not_know() -> None:
    job = PersistedJob.from_bytes(NEWER)

    assert job.extra == {"labels": {"team": "billing"}}
    assert job.headers == {"traceparent": "00-4bf9-00f0-01"}  # known since headers were added
    assert (job.id, job.value, job.max_attempts) == ("a", b"{}", 3)
    assert (job.priority, job.group) == (7, "acme")


def test_envelope_leaves_out_default_priority_and_group() -> None:
    plain = PersistedJob(id="a", type="t", value=b"1")
    tagged = PersistedJob(id="a", type="t", value=b"1", priority=-3, group="acme")

    assert b"priority" not in plain.to_bytes()
    assert b"group" not in plain.to_bytes()
    assert PersistedJob.from_bytes(tagged.to_bytes()) == tagged


def test_adjusted_priority_and_group_reach_the_envelope() -> None:
    persisted = PersistedJob(id="a", type="t", value=b"1")

    cq.adjust("hi", priority=9, group="tenant-1").decorate(persisted)

    assert (persisted.priority, persisted.group) == (9, "tenant-1")


def test_headers_round_trip_and_are_left_out_when_empty() -> None:
    job = PersistedJob(id="a", type="t", value=b"1", headers={"k": "v", "ü": ""})

    again = PersistedJob.from_bytes(job.to_bytes())

    assert again.headers == {"k": "v", "ü": ""}
    assert b"headers" not in PersistedJob(id="a", type="t", value=b"1").to_bytes()


def test_an_envelope_whose_headers_are_not_text_is_refused() -> None:
    raw = (
        b'{"v":2,"id":"a","type":"t","handle_timeout_ms":1000,"attempts":1,"max_attempts":3,'
        b'"value":"{}","headers":{"n":1}}'
    )

    with pytest.raises(DecodeError, match="not a corequeue envelope"):
        PersistedJob.from_bytes(raw)


def test_envelope_writes_back_what_it_does_not_know_after_a_retry() -> None:
    job = PersistedJob.from_bytes(NEWER)
    job.attempts, job.last_error, job.backoff = 2, "boom", timedelta(seconds=1)

    again = PersistedJob.from_bytes(job.to_bytes())

    assert again == job
    assert again.extra == job.extra
    assert (again.attempts, again.last_error) == (2, "boom")


def test_known_fields_win_over_extra_ones_of_the_same_name() -> None:
    job = PersistedJob(id="a", type="t", value=b"1", extra={"id": "b", "attempts": 9, "x": 1})

    again = PersistedJob.from_bytes(job.to_bytes())

    assert (again.id, again.attempts, again.extra) == ("a", 1, {"x": 1})


def test_extra_fields_take_no_part_in_equality() -> None:
    assert PersistedJob("a", "t", b"1", extra={"x": 1}) == PersistedJob("a", "t", b"1")


@pytest.mark.parametrize(
    "raw",
    [NEWER.replace(b'"attempts":1', b'"attempts":"one"'), NEWER.replace(b'"v":2', b'"v":3')],
    ids=["a known field is wrong", "a version from the future"],
)
def test_unknown_fields_do_not_hide_what_is_wrong(raw: bytes) -> None:
    with pytest.raises(cq.DecodeError):
        PersistedJob.from_bytes(raw)


def test_to_ms_rounds_up_so_nothing_runs_early() -> None:
    assert to_ms(timedelta(microseconds=1)) == 1
    assert to_ms(timedelta(seconds=1)) == 1000
    assert to_ms(timedelta(0)) == 0
