"""A FakeClock that reads the wall clock, for end-to-end tests that really consume."""

from __future__ import annotations

import time
from datetime import timedelta

from corequeue.testing import FakeClock


class WallClock(FakeClock):
    """Tells the real time (plus whatever a test advanced it by)."""

    def __init__(self) -> None:
        super().__init__()
        self._offset_us = 0

    def now_us(self) -> int:
        return time.time_ns() // 1_000 + self._offset_us

    def now_ms(self) -> int:
        return self.now_us() // 1_000

    def advance(self, by: timedelta) -> None:
        self._offset_us += by // timedelta(microseconds=1)
