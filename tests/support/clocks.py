"""A FakeClock that reads the wall clock, for end-to-end tests that really consume."""

from __future__ import annotations

import time
from datetime import timedelta

from corequeue.testing import FakeClock


class WallClock(FakeClock):
    """Tells the real time (plus whatever a test advanced it by)."""

    def __init__(self) -> None:
        super().__init__()
        self._offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms

    def advance(self, by: timedelta) -> None:
        self._offset_ms += int(by / timedelta(milliseconds=1))
