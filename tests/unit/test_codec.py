"""The default JSON codec round-trips every supported payload to its declared class."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest

import corequeue as cq
from corequeue.codec import MAX_DEPTH, JsonCodec


@dataclass
class Point:
    x: int
    y: int


class Model(pydantic.BaseModel):
    name: str
    tags: list[str]


class Struct(msgspec.Struct):
    id: int
    when: datetime


class Color(enum.Enum):
    RED = "red"


class Movie(TypedDict):
    title: str
    year: int


class Email(str):
    pass


CASES: list[tuple[Any, type[Any]]] = [
    (Point(1, 2), Point),
    (Model(name="a", tags=["x"]), Model),
    (Struct(id=1, when=datetime(2030, 1, 1, tzinfo=UTC)), Struct),
    (Color.RED, Color),
    ({"title": "Heat", "year": 1995}, Movie),
    ({"a": [1, 2]}, dict),
    ([1, "two"], list),
    ("text", str),
    (42, int),
    (1.5, float),
    (True, bool),
    (datetime(2030, 1, 1, 12, tzinfo=UTC), datetime),
    (date(2030, 1, 1), date),
    (uuid.UUID(int=7), uuid.UUID),
    (Email("a@example.com"), Email),
]


@pytest.mark.parametrize(("value", "cls"), CASES, ids=[type(v).__name__ for v, _ in CASES])
def test_payload_round_trips_to_its_class(value: Any, cls: type[Any]) -> None:
    codec = JsonCodec()

    decoded = codec.decode(codec.encode(value), cls)

    assert decoded == value
    assert type(decoded) is type(value)


def test_none_round_trips() -> None:
    codec = JsonCodec()

    assert codec.decode(codec.encode(None), type(None)) is None


def test_untyped_decode_gives_plain_json() -> None:
    codec = JsonCodec()

    assert codec.decode(codec.encode(Point(1, 2))) == {"x": 1, "y": 2}


def test_payload_that_no_longer_fits_its_class_is_a_decode_error() -> None:
    codec = JsonCodec()

    with pytest.raises(cq.DecodeError, match="Point"):
        codec.decode(b'{"x": 1}', Point)


def test_pydantic_validation_failure_is_a_decode_error() -> None:
    with pytest.raises(cq.DecodeError, match="Model"):
        JsonCodec().decode(b'{"name": 3}', Model)


def test_invalid_json_is_a_decode_error() -> None:
    with pytest.raises(cq.DecodeError):
        JsonCodec().decode(b"\xff{", Point)


def test_unencodable_value_is_an_encode_error() -> None:
    with pytest.raises(cq.EncodeError, match="object"):
        JsonCodec().encode(object())


def test_pickle_is_only_an_explicit_opt_in() -> None:
    codec = cq.PickleCodec()

    assert codec.decode(codec.encode({1, 2})) == {1, 2}
    assert isinstance(cq.Queue(cq.InProcessDriver()).codec, JsonCodec)


def nested(depth: int, leaf: Any = 0) -> Any:
    """`depth` lists inside each other around `leaf`: nested(2) == [[0]]."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@dataclass
class Reading:
    sensor: str
    value: float


class Sample(msgspec.Struct):
    values: list[float]


class Measure(pydantic.BaseModel):
    values: list[float]


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (float("nan"), "nan at $"),
        (float("inf"), "inf at $"),
        ({"a": [1.0, float("-inf")]}, "-inf at $.a[1]"),
        (Reading("t1", float("nan")), "nan at $.value"),
        (Sample([0.5, float("inf")]), "inf at $.values[1]"),
        (Measure(values=[1.0, float("nan")]), "nan at $.values[1]"),
    ],
    ids=["nan", "inf", "nested", "dataclass", "struct", "pydantic"],
)
def test_nan_and_infinity_are_an_encode_error_naming_where(value: Any, where: str) -> None:
    with pytest.raises(cq.EncodeError) as raised:
        JsonCodec().encode(value)

    assert where in str(raised.value)
    assert "JSON has no NaN or infinity" in str(raised.value)


def test_null_and_finite_floats_still_encode() -> None:
    assert (
        JsonCodec().encode({"a": None, "b": [1.5, None, -0.0]}) == b'{"a":null,"b":[1.5,null,-0.0]}'
    )


def test_cyclic_values_are_an_encode_error() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    looped: dict[str, Any] = {}
    looped["self"] = looped

    for value in (cycle, looped):
        with pytest.raises(cq.EncodeError, match="cyclic or nested more than 256 levels deep"):
            JsonCodec().encode(value)


@pytest.mark.parametrize("depth", [257, 1_000, 100_000])
def test_values_nested_too_deeply_are_an_encode_error(depth: int) -> None:
    with pytest.raises(cq.EncodeError, match="nested more than 256 levels deep"):
        JsonCodec().encode(nested(depth))


def test_nesting_up_to_the_limit_round_trips() -> None:
    value = nested(MAX_DEPTH)

    assert JsonCodec().decode(JsonCodec().encode(value)) == value


def test_brackets_inside_strings_are_not_nesting() -> None:
    value = {'k"[{': ["[" * 1_000, "\\", '\\"]]'], "]": "{" * 300}

    assert JsonCodec().decode(JsonCodec().encode(value)) == value


def test_objects_count_as_nesting_too() -> None:
    value: Any = 0
    for _ in range(129):
        value = {"a": [value]}

    with pytest.raises(cq.EncodeError, match="nested"):
        JsonCodec().encode(value)
