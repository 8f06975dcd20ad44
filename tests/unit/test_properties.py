"""Properties of the codec, the envelope and adjust(), over generated inputs (hypothesis).

Every supported payload comes back from JsonCodec as an equal value of its class; any bytes at
all fed to a decoder give a value or a clean DecodeError, never another exception. Any value
encodes to JSON that reads back equal, or gives EncodeError; any arguments to adjust() give a
job whose envelope round-trips, or InvalidOption.
"""

from __future__ import annotations

import contextlib
import enum
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypedDict, TypeVar

import msgspec
import pydantic
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from corequeue.codec import JsonCodec
from corequeue.errors import DecodeError, EncodeError, InvalidOption
from corequeue.job import ENVELOPE_VERSION, LONGEST_DELAY, PersistedJob, adjust, to_ms


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Order:
    id: int
    customer: str
    total: float
    lines: list[str]
    placed: datetime
    token: uuid.UUID
    color: Color
    note: str | None = None


class Model(pydantic.BaseModel):
    name: str
    tags: list[str]
    level: Level


class Struct(msgspec.Struct):
    id: int
    when: datetime
    ratio: float


class Movie(TypedDict):
    title: str
    year: int


class Email(str):
    pass


# JSON carries neither NaN nor infinity (msgspec writes them as null): finite floats only.
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
# RFC 3339 offsets are whole minutes: msgspec drops the seconds of an offset like +00:19:32
# (local mean time of some historical zones), so generated time zones use whole minutes.
TIMEZONES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m))),
)
DATETIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=TIMEZONES
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | FLOATS | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=20,
)


def typed(value_strategy: st.SearchStrategy[Any], cls: type[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(value_strategy, st.just(cls))


PAYLOADS: st.SearchStrategy[tuple[Any, type[Any]]] = st.one_of(
    typed(st.text(), str),
    typed(st.integers(), int),
    typed(FLOATS, float),
    typed(st.booleans(), bool),
    typed(st.none(), type(None)),
    typed(DATETIMES, datetime),
    typed(st.dates(), date),
    typed(st.uuids(), uuid.UUID),
    typed(st.sampled_from(Color), Color),
    typed(st.sampled_from(Level), Level),
    typed(st.lists(JSON_VALUES, max_size=5), list),
    typed(st.dictionaries(st.text(), JSON_VALUES, max_size=5), dict),
    typed(st.text().map(Email), Email),
    typed(
        st.builds(
            Order,
            id=st.integers(),
            customer=st.text(),
            total=FLOATS,
            lines=st.lists(st.text(), max_size=4),
            placed=DATETIMES,
            token=st.uuids(),
            color=st.sampled_from(Color),
            note=st.none() | st.text(),
        ),
        Order,
    ),
    typed(
        st.builds(
            Model,
            name=st.text(),
            tags=st.lists(st.text(), max_size=4),
            level=st.sampled_from(Level),
        ),
        Model,
    ),
    typed(st.builds(Struct, id=st.integers(), when=DATETIMES, ratio=FLOATS), Struct),
    typed(st.fixed_dictionaries({"title": st.text(), "year": st.integers()}), Movie),
)

DECODE_TARGETS: list[type[Any] | None] = [
    None,
    str,
    int,
    float,
    bool,
    type(None),
    list,
    dict,
    datetime,
    date,
    uuid.UUID,
    Color,
    Level,
    Email,
    Order,
    Model,
    Struct,
    Movie,
]

# Integers anywhere, with the edges of 32 and 64 bits and of timedelta (about 2**56 ms) likely.
INTEGERS = st.integers() | st.sampled_from(
    [edge + delta for edge in (2**31, 2**53, 2**56, 2**63, 2**64) for delta in (-1, 0)]
).flatmap(lambda edge: st.sampled_from([edge, -edge]))
ENVELOPE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "v": st.just(ENVELOPE_VERSION) | INTEGERS,
    "id": st.text(max_size=8),
    "type": st.text(max_size=8),
    "handle_timeout_ms": INTEGERS,
    "attempts": INTEGERS,
    "max_attempts": INTEGERS,
    "value": st.text(),
    "value_b64": st.binary().map(lambda raw: msgspec.json.decode(msgspec.json.encode(raw))),
    "backoff_ms": INTEGERS,
    "last_error": st.none() | st.text(),
}


@st.composite
def envelope_like(draw: st.DrawFn) -> bytes:
    """JSON objects shaped like envelopes: each field well typed, missing, or any JSON at all."""
    document: dict[str, Any] = {}
    for name, well_typed in ENVELOPE_FIELDS.items():
        form = draw(st.sampled_from(["typed"] * 8 + ["missing", "any"]))
        if form == "typed":
            document[name] = draw(well_typed)
        elif form == "any":
            document[name] = draw(JSON_VALUES)
    return msgspec.json.encode(document)


@given(PAYLOADS)
def test_any_supported_payload_round_trips_to_its_class(case: tuple[Any, type[Any]]) -> None:
    value, cls = case
    codec = JsonCodec()

    decoded = codec.decode(codec.encode(value), cls)

    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize("into", DECODE_TARGETS, ids=lambda cls: getattr(cls, "__name__", "None"))
@given(raw=st.binary() | JSON_VALUES.map(msgspec.json.encode))
def test_any_bytes_decode_to_a_value_or_a_decode_error(into: type[Any] | None, raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        JsonCodec().decode(raw, into)


@given(raw=st.binary())
def test_any_bytes_read_as_an_envelope_or_give_a_decode_error(raw: bytes) -> None:
    try:
        job = PersistedJob.from_bytes(raw)
    except DecodeError:
        return

    assert PersistedJob.from_bytes(job.to_bytes()) == job


@settings(max_examples=400)
@given(raw=envelope_like())
@example(raw=b'{"v":1,"id":"a","type":"t","handle_timeout_ms":86400000000000000,'
         b'"attempts":1,"max_attempts":1,"value":"1"}')  # fmt: skip
def test_any_envelope_shaped_json_reads_or_gives_a_decode_error(raw: bytes) -> None:
    try:
        job = PersistedJob.from_bytes(raw)
    except DecodeError:
        return

    assert PersistedJob.from_bytes(job.to_bytes()) == job


@given(raw=st.binary(), cut=st.integers(min_value=0))
def test_a_truncated_envelope_gives_a_decode_error(raw: bytes, cut: int) -> None:
    whole = PersistedJob(id="a", type="t", value=raw, last_error="boom").to_bytes()

    with pytest.raises(DecodeError):
        PersistedJob.from_bytes(whole[: cut % len(whole)])


@given(
    job=st.builds(
        PersistedJob,
        id=st.text(),
        type=st.text(),
        value=st.binary(),
        handle_timeout=st.integers(1, 10**12).map(lambda ms: timedelta(milliseconds=ms)),
        backoff=st.integers(0, 10**12).map(lambda ms: timedelta(milliseconds=ms)),
        attempts=st.integers(1, 2**31 - 1),
        max_attempts=st.integers(1, 2**31 - 1),
        last_error=st.none() | st.text(),
    )
)
def test_any_persisted_job_round_trips_through_its_envelope(job: PersistedJob) -> None:
    assert PersistedJob.from_bytes(job.to_bytes()) == job


T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def outcome(call: Callable[[], T], expected: type[E]) -> T | E:
    """The result of `call`, or the `expected` exception it raised."""
    try:
        return call()
    except expected as exc:
        return exc


# --- adjust(): any arguments give a job or InvalidOption ----------------------------------------

ANYTHING: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    INTEGERS,
    st.floats(),
    st.text(max_size=1_010),
    st.binary(max_size=4),
    st.timedeltas(),
    st.datetimes(timezones=TIMEZONES),
    st.dates(),
    st.lists(st.integers(), max_size=2),
)
ADJUST_ARGUMENTS = (
    "defer",
    "schedule_at",
    "max_attempts",
    "timeout",
    "unique_id",
    "priority",
    "group",
    "keep_result",
)


@settings(max_examples=500)
@given(options=st.dictionaries(st.sampled_from(ADJUST_ARGUMENTS), ANYTHING, max_size=4))
def test_adjust_takes_any_arguments_to_a_job_or_an_invalid_option(options: dict[str, Any]) -> None:
    adjusted = outcome(lambda: adjust(1, **options), InvalidOption)
    if isinstance(adjusted, InvalidOption):
        assert str(adjusted).startswith("adjust(): ")
        return

    persisted = PersistedJob(id="generated", type=adjusted.type, value=b"1")
    adjusted.decorate(persisted)
    assert timedelta(0) <= adjusted.defer() <= LONGEST_DELAY
    stored = PersistedJob.from_bytes(persisted.to_bytes())
    assert (stored.id, stored.max_attempts) == (persisted.id, persisted.max_attempts)
    assert stored.handle_timeout == timedelta(milliseconds=to_ms(persisted.handle_timeout))
    assert type(persisted.max_attempts) is int
    assert type(persisted.id) is str
    assert -100 <= adjusted.priority <= 100


# --- the codec: any value gives JSON that reads back, or EncodeError ----------------------------

ANY_FLOATS = st.floats() | st.sampled_from([float("nan"), float("inf"), float("-inf")])
VALUES_WITH_ANY_FLOATS = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_FLOATS | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=20,
)


def has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(child) for child in value.values())
    if isinstance(value, list):
        return any(has_non_finite(child) for child in value)
    return False


@given(value=VALUES_WITH_ANY_FLOATS, depth=st.integers(0, 300))
def test_any_value_encodes_to_what_decodes_back_or_to_an_encode_error(
    value: Any, depth: int
) -> None:
    for _ in range(depth):
        value = [value]
    codec = JsonCodec()

    raw = outcome(lambda: codec.encode(value), EncodeError)
    if isinstance(raw, EncodeError):
        assert has_non_finite(value) or "nested more than 256" in str(raw)
        return

    assert not has_non_finite(value)
    assert codec.decode(raw) == value
