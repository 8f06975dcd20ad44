"""cq.Rate and cq.Limits: parsing, checks, and the admission rule drivers share (Gate)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

import corequeue as cq
from corequeue.drivers.flow import FlowState, Gate, group_scope
from corequeue.limits import HeldBack

SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/s", cq.Rate(100, SECOND)),
        ("5/m", cq.Rate(5, timedelta(minutes=1))),
        (" 7 / h ", cq.Rate(7, timedelta(hours=1))),
        ("10/30s", cq.Rate(10, timedelta(seconds=30))),
    ],
)
def test_rate_parses_the_configuration_form(text: str, rate: cq.Rate) -> None:
    assert cq.Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["100", "100/d", "/s", "-1/s", "0/s", "1.5/s", 7])
def test_rate_refuses_other_text(text: object) -> None:
    with pytest.raises(cq.InvalidOption):
        cq.Rate.parse(text)  # type: ignore[arg-type]


def test_rate_interval_rounds_up_so_starts_are_never_faster() -> None:
    assert cq.Rate(3, SECOND).interval_us == 333_334
    assert str(cq.Rate(5, timedelta(minutes=1))) == "5/m"
    assert str(cq.Rate(10, timedelta(seconds=30))) == "10/30s"


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency": 0},
        {"group_concurrency": True},
        {"concurrency": 1.5},
        {"rate": "100/s"},
        {"group_rate": 3},
    ],
)
def test_limits_refuse_values_of_the_wrong_kind(options: dict[str, object]) -> None:
    with pytest.raises(cq.InvalidOption):
        cq.Limits(**options)  # type: ignore[arg-type]


def test_rate_refuses_a_window_that_is_not_positive() -> None:
    with pytest.raises(cq.InvalidOption):
        cq.Rate(1, timedelta(0))


def test_limits_describe_what_is_set() -> None:
    limits = cq.Limits(group_concurrency=2, rate=cq.Rate(100, SECOND))

    assert limits.describe() == {"groupConcurrency": 2, "rate": "100/s"}
    assert cq.Limits().is_empty
    assert limits.limits_groups


def test_queue_refuses_limits_of_another_type() -> None:
    with pytest.raises(cq.InvalidOption, match=r"corequeue\.Limits"):
        cq.Queue(cq.InProcessDriver(), limits={"concurrency": 1})  # type: ignore[arg-type]


def test_gate_counts_each_start_and_closes_a_full_group() -> None:
    gate = Gate(cq.Limits(concurrency=3, group_concurrency=1), FlowState(), now_us=0)

    admitted = [gate.admit(group) for group in ["a", "a", "b", None, None]]

    assert admitted == [True, False, True, True, False]
    assert gate.held == Counter({HeldBack.GROUP_CONCURRENCY: 1, HeldBack.CONCURRENCY: 1})


def test_gate_spaces_starts_by_the_rate_interval() -> None:
    state = FlowState(next_start_us={group_scope("a"): 5_000})
    gate = Gate(cq.Limits(rate=cq.Rate(2, SECOND), group_rate=cq.Rate(1, SECOND)), state, 1_000)

    assert not gate.admit("a")  # its group's next start is at 5 ms
    assert gate.admit("b")
    assert not gate.admit(None)  # the queue's next start moved to 501 ms

    assert gate.changed_scopes() == {"": 501_000, group_scope("b"): 1_001_000}
    assert gate.next_open_us() == 5_000


def test_queue_refuses_limits_for_a_driver_that_cannot_enforce_them() -> None:
    class Minimal(cq.InProcessDriver):
        set_limits = None  # type: ignore[assignment]  # a driver of one's own, before limits

    driver: Any = Minimal()

    with pytest.raises(cq.InvalidOption, match="does not enforce limits"):
        cq.Queue(driver, limits=cq.Limits(concurrency=1))
    assert cq.Queue(driver).limits.is_empty
