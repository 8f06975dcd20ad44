"""Handle timeouts of many job tasks from one timer, instead of an `asyncio.timeout` per job.

An `asyncio.timeout` scope costs a context manager, a timer handle pushed on the loop's heap and
its cancellation for every job: a tenth of a worker's time on short jobs. `Deadlines` keeps the
deadlines of running jobs in one heap and one loop timer armed for the earliest; finished jobs
are dropped lazily, and the heap is compacted when finished entries outnumber running ones.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from dataclasses import dataclass

_RESOLUTION = time.get_clock_info("monotonic").resolution


@dataclass(slots=True, eq=False)
class Deadline:
    """The deadline of one job task's listeners.

    `active` is cleared by `Deadlines.finish` when the listeners return; `expired` is set when
    the deadline passed first and the task was cancelled for it.
    """

    task: asyncio.Task[None]
    active: bool = True
    expired: bool = False


class Deadlines:
    """Cancels a watched task whose deadline passes while it is still active."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()  # ties in time: first come, first expired
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._finished = 0  # entries in the heap whose deadline is no longer active

    def watch(self, task: asyncio.Task[None], seconds: float) -> Deadline:
        """Cancel `task` in `seconds` unless the returned deadline is no longer active."""
        loop = task.get_loop()
        at = loop.time() + seconds
        deadline = Deadline(task)
        heapq.heappush(self._heap, (at, next(self._order), deadline))
        if at < self._timer_at:
            self._arm(loop, at)
        return deadline

    def finish(self, deadline: Deadline) -> None:
        """The listeners returned: the deadline no longer applies."""
        if deadline.active:
            deadline.active = False
            self._finished += 1
            if self._finished > 64 and 2 * self._finished > len(self._heap):
                self._compact()

    def close(self) -> None:
        """Stop the timer; no task is cancelled any more."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at, self._heap = None, math.inf, []

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if entry[2].active]
        heapq.heapify(self._heap)
        self._finished = 0

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = loop.time() + _RESOLUTION  # the loop runs a timer up to its clock's resolution early
        heap = self._heap
        while heap and (not heap[0][2].active or heap[0][0] <= now):
            _, _, deadline = heapq.heappop(heap)
            if not deadline.active:
                self._finished -= 1
                continue
            deadline.active = False
            deadline.expired = True
            deadline.task.cancel()
        if heap:
            self._arm(loop, heap[0][0])
