"""The retry delay rule, as pure functions.

Each retry waits about twice as long as the one before, with 0.5-1.5 jitter so that jobs failing
together do not retry together, clamped to [1 s, 10 min].
"""

from __future__ import annotations

import random
from datetime import timedelta

MIN_BACKOFF = timedelta(seconds=1)
MAX_BACKOFF = timedelta(minutes=10)


def next_backoff(previous: timedelta, rng: random.Random | None = None) -> timedelta:
    """Return the delay before the next attempt.

    Args:
        previous: The delay used before the attempt that just failed (zero the first time).
        rng: Source of jitter; tests pass a seeded one.

    Example:
        >>> next_backoff(timedelta(0)) == MIN_BACKOFF
        True
    """
    jitter = (rng or random).uniform(0.5, 1.5)
    return clamp(previous * 2 * jitter)


def clamp(delay: timedelta) -> timedelta:
    """Return `delay` held within [MIN_BACKOFF, MAX_BACKOFF]."""
    return min(max(delay, MIN_BACKOFF), MAX_BACKOFF)
