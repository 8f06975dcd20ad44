"""Bad input at dispatch, over every driver: refused at the call, and nothing is stored.

Options are checked by `adjust()` and payloads by the codec before the driver sees anything, so
every store gets the same, already valid, values (docs/guarantees.md, "Input validation").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import corequeue as cq
from corequeue.drivers.base import Driver, QueueInfo
from corequeue.job import LONGEST_DELAY, MAX_ATTEMPTS_LIMIT, MAX_UNIQUE_ID_CHARS


def cyclic() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"child": value}
    return value


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"max_attempts": 2.0}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"unique_id": 123}, "unique_id"),
        ({"timeout": 5}, "timeout"),
        ({"defer": 5}, "defer"),
        ({"priority": 1000}, "priority"),
        ({"group": ""}, "group"),
        ({"keep_result": 60}, "keep_result"),
    ],
    ids=repr,
)
async def test_options_of_the_wrong_type_are_refused_before_any_store_sees_them(
    driver: Driver, options: dict[str, Any], argument: str
) -> None:
    queue = cq.Queue(driver)

    with pytest.raises(cq.InvalidOption, match=f"adjust\\(\\): {argument} must be"):
        await queue.dispatch(cq.adjust(7, **options))

    assert await queue.info() == QueueInfo()


async def test_the_edges_of_every_range_are_stored_and_read_back_alike(driver: Driver) -> None:
    queue = cq.Queue(driver)
    unique_id = "é" + "x" * (MAX_UNIQUE_ID_CHARS - 1)
    await queue.dispatch(
        cq.adjust(7, max_attempts=MAX_ATTEMPTS_LIMIT, timeout=LONGEST_DELAY, unique_id=unique_id)
    )
    await queue.dispatch(cq.adjust(8, defer=LONGEST_DELAY, unique_id="far"))

    job = await driver.pop()
    await driver.ack(job)

    assert (job.id, job.max_attempts, job.handle_timeout) == (
        unique_id,
        MAX_ATTEMPTS_LIMIT,
        LONGEST_DELAY,
    )
    assert await queue.info() == QueueInfo(delayed=1)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (cyclic(), "cyclic or nested more than 256 levels deep"),
        (nested(1_000), "cyclic or nested more than 256 levels deep"),
        ({"total": float("nan")}, "nan at $.total (JSON has no NaN or infinity)"),
        ([1.0, float("inf")], "inf at $[1]"),
        ({"low": float("-inf")}, "-inf at $.low"),
    ],
    ids=["cyclic", "deep", "nan", "inf", "-inf"],
)
async def test_payloads_json_cannot_carry_are_an_encode_error_and_nothing_is_stored(
    driver: Driver, payload: Any, message: str
) -> None:
    queue = cq.Queue(driver)

    with pytest.raises(cq.EncodeError) as one:
        await queue.dispatch(payload)
    with pytest.raises(cq.EncodeError):
        await queue.dispatch_many([1, payload, 2])

    assert message in str(one.value)
    assert await queue.info() == QueueInfo()


async def test_a_long_deferral_is_delayed_not_due(driver: Driver) -> None:
    queue = cq.Queue(driver)

    await queue.dispatch(cq.adjust(1, defer=LONGEST_DELAY - timedelta(days=1)))

    assert await queue.info() == QueueInfo(delayed=1)
