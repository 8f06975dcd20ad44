"""Helpers for testing code that uses corequeue: a clock that moves only when told."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock for drivers that tests move by hand instead of sleeping.

    It keeps microseconds, so a test can stand at an instant inside a millisecond. Unless told
    otherwise it starts on a whole millisecond, so tests that advance by whole milliseconds land
    exactly on due instants whether a store compares microseconds or whole milliseconds.

    Example:
        >>> clock = FakeClock(datetime(2024, 1, 1, 0, 0, 0, 999, tzinfo=UTC))
        >>> clock.now_us() % 1000, clock.now_ms() % 1000
        (999, 0)
        >>> clock.advance(timedelta(microseconds=1))
        >>> clock.now_ms() % 1000
        1
        >>> clock.advance(timedelta(minutes=1))
        >>> clock.now_us() % 60_000_000
        1000
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now_us = time.time_ns() // 1_000_000 * 1_000 if start is None else _epoch_us(start)
        self._lock = threading.Lock()

    def now_us(self) -> int:
        """Return the current fake time in microseconds since the Unix epoch."""
        with self._lock:
            return self._now_us

    def now_ms(self) -> int:
        """Return the current fake time in whole milliseconds since the epoch, rounded down."""
        return self.now_us() // 1_000

    def advance(self, by: timedelta) -> None:
        """Move the clock forward by `by`, to the microsecond."""
        with self._lock:
            self._now_us += by // _MICROSECOND


_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(instant: datetime) -> int:
    """Return `instant` in microseconds since the Unix epoch; naive means local time."""
    aware = instant if instant.tzinfo is not None else instant.astimezone()
    return (aware - _EPOCH) // _MICROSECOND
