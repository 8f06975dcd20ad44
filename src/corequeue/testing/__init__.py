"""Helpers for testing code that uses corequeue: a clock that moves only when told."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta


class FakeClock:
    """A clock for drivers that tests move by hand instead of sleeping.

    Example:
        >>> clock = FakeClock()
        >>> before = clock.now_ms()
        >>> clock.advance(timedelta(minutes=1))
        >>> clock.now_ms() - before
        60000
    """

    def __init__(self, start: datetime | None = None) -> None:
        start_ms = time.time_ns() // 1_000_000 if start is None else int(start.timestamp() * 1000)
        self._now_ms = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """Return the current fake time in milliseconds since the Unix epoch."""
        with self._lock:
            return self._now_ms

    def advance(self, by: timedelta) -> None:
        """Move the clock forward by `by`."""
        with self._lock:
            self._now_ms += int(by / timedelta(milliseconds=1))
