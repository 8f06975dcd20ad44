"""The retry delay rule."""

from __future__ import annotations

import random
from datetime import timedelta

from corequeue.backoff import MAX_BACKOFF, MIN_BACKOFF, next_backoff


def test_first_backoff_is_the_minimum() -> None:
    assert next_backoff(timedelta(0), random.Random(1)) == MIN_BACKOFF


def test_backoff_doubles_with_jitter() -> None:
    rng = random.Random(7)
    for _ in range(100):
        delay = next_backoff(timedelta(seconds=10), rng)
        assert timedelta(seconds=10) <= delay <= timedelta(seconds=30)


def test_backoff_is_clamped_to_ten_minutes() -> None:
    assert (
        next_backoff(timedelta(hours=5), random.Random(3)) == MAX_BACKOFF == timedelta(minutes=10)
    )


def test_backoff_grows_to_the_cap() -> None:
    rng, delay = random.Random(5), timedelta(0)
    for _ in range(30):
        delay = next_backoff(delay, rng)
    assert delay == MAX_BACKOFF
