"""Waiting for a job to finish, for `Queue.result()`: one loop for every driver.

A driver looks the job up, and between looks waits for a sign that something finished: a bell
its own settles ring (in-process), a notification from the store (PostgreSQL LISTEN), or a
short back-off that grows to a cap (what other processes finish on SQLite). Never a tight loop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta

from corequeue.drivers.base import FINISHED, JobView
from corequeue.drivers.wakeup import Bell

FIRST_BACKOFF_SECONDS = 0.005
"""The first pause between two looks when no bell covers every process."""


class Pause:
    """Waits between two looks at a job: until `bell` rings, or a back-off step has passed.

    Args:
        bell: Rung when a job may have finished (None: back-off only).
        cap_seconds: The longest back-off step (None: wait for the bell alone, up to the
            time left).

    Example:
        >>> Pause(None, 0.25).step_seconds(10)
        0.25
    """

    def __init__(self, bell: Bell | None, cap_seconds: float | None) -> None:
        self.bell = bell
        self.cap_seconds = cap_seconds

    def mark(self) -> int:
        """Return what `wait()` compares against, read before a look (no ring is missed)."""
        return 0 if self.bell is None else self.bell.rings

    def step_seconds(self, rounds: int) -> float:
        """Return the back-off step after `rounds` looks: doubling from 5 ms to the cap."""
        if self.cap_seconds is None:
            return math.inf
        step: float = FIRST_BACKOFF_SECONDS * 2 ** min(rounds, 20)
        return min(step, self.cap_seconds)

    async def wait(self, seen: int, rounds: int, left_seconds: float) -> None:
        """Return after a ring since `seen`, the back-off step, or `left_seconds`."""
        seconds = min(self.step_seconds(rounds), left_seconds)
        if self.bell is None:
            await asyncio.sleep(seconds)
        else:
            await self.bell.wait(seen, seconds)


async def wait_finished(
    look: Callable[[], Awaitable[JobView | None]],
    pause: Pause,
    wait: timedelta | None,
) -> JobView | None:
    """Look the job up until it is finished, gone, or `wait` is over; return the last view.

    Args:
        look: Returns the job's view wherever it is, or None when there is no such job.
        pause: How to wait between two looks.
        wait: How long to wait in all (None: no limit).
    """
    loop = asyncio.get_running_loop()
    deadline = math.inf if wait is None else loop.time() + max(wait.total_seconds(), 0.0)
    rounds = 0
    while True:
        seen = pause.mark()
        view = await look()
        if view is None or view.channel in FINISHED:
            return view
        left = deadline - loop.time()
        if left <= 0:
            return view
        await pause.wait(seen, rounds, left)
        rounds += 1
