"""What the overview chart draws: jobs finished per interval, and the backlog over time.

The finished attempts come from the store's throughput counters, which every worker adds to
(`Dashboard.activity`), so the chart shows the whole fleet wherever the dashboard runs. Kept
in memory here, for the last `WINDOW`:

- `ActivityRecorder.observe()` is a `JobMetrics`: the dashboard adds it to the metrics of the
  queues it is given, so every attempt finished *in this process* is counted by outcome. When
  the dashboard runs beside the workers (mounted in the app that consumes), that is the
  queue's throughput.
- `ActivityRecorder.sample()` records the channel counts the dashboard reads from the store,
  which every process sees: the backlog line is right wherever the dashboard runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from corequeue.drivers.base import QueueInfo
from corequeue.metrics import Outcome

BUCKET_SECONDS = 30
"""Width of one bar of the chart."""

WINDOW_BUCKETS = 30
"""Bars in the chart: 30 of 30 seconds, the last 15 minutes."""

SAMPLE_SECONDS = 5.0
"""Least time between two recorded samples of the channel counts of a queue."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """Attempts finished in one interval, by outcome, and the last backlog seen in it."""

    start: float
    processed: int = 0
    retried: int = 0
    failed: int = 0
    backlog: int | None = None

    @property
    def finished(self) -> int:
        """Every attempt that ended in the interval."""
        return self.processed + self.retried + self.failed


@dataclass(slots=True)
class _QueueActivity:
    outcomes: dict[int, dict[Outcome, int]] = field(default_factory=dict)
    backlog: dict[int, int] = field(default_factory=dict)
    last_sample: float = float("-inf")


class ActivityRecorder:
    """Counts finished attempts and samples backlogs per queue, for the last 15 minutes.

    Thread-safe: workers may observe from their own threads or event loops.

    Args:
        clock: Seconds since the epoch (tests pass their own).

    Example:
        >>> recorder = ActivityRecorder()
        >>> recorder.observe("default", "app.Email", "processed", 0.01)
        >>> recorder.buckets("default")[-1].processed
        1
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._queues: dict[str, _QueueActivity] = {}
        self._lock = threading.Lock()

    def observe(self, queue: str, job_type: str, outcome: Outcome, duration_seconds: float) -> None:
        """Count one finished attempt (the JobMetrics protocol)."""
        now = self._clock()
        with self._lock:
            activity = self._activity(queue, now)
            counts = activity.outcomes.setdefault(_bucket_of(now), {})
            counts[outcome] = counts.get(outcome, 0) + 1

    def sample(self, queue: str, info: QueueInfo) -> None:
        """Record the backlog (waiting, delayed, reserved) of `queue` read just now.

        Samples closer than `SAMPLE_SECONDS` to the last one are dropped: every page view
        offers one.
        """
        now = self._clock()
        with self._lock:
            activity = self._activity(queue, now)
            if now - activity.last_sample < SAMPLE_SECONDS:
                return
            activity.last_sample = now
            activity.backlog[_bucket_of(now)] = info.pending

    def needs_sample(self, queue: str) -> bool:
        """Whether `sample()` would record a sample of `queue` now."""
        with self._lock:
            activity = self._queues.get(queue)
            return activity is None or self._clock() - activity.last_sample >= SAMPLE_SECONDS

    def buckets(self, queue: str) -> list[Bucket]:
        """Return the last `WINDOW_BUCKETS` intervals of `queue`, oldest first."""
        now = self._clock()
        newest = _bucket_of(now)
        with self._lock:
            activity = self._activity(queue, now)
            return [
                _bucket(index, activity) for index in range(newest - WINDOW_BUCKETS + 1, newest + 1)
            ]

    def _activity(self, queue: str, now: float) -> _QueueActivity:
        activity = self._queues.setdefault(queue, _QueueActivity())
        oldest = _bucket_of(now) - WINDOW_BUCKETS
        for kept in (activity.outcomes, activity.backlog):
            for index in [index for index in kept if index <= oldest]:
                del kept[index]
        return activity


def _bucket_of(seconds: float) -> int:
    return int(seconds // BUCKET_SECONDS)


def _bucket(index: int, activity: _QueueActivity) -> Bucket:
    counts = activity.outcomes.get(index, {})
    return Bucket(
        start=float(index * BUCKET_SECONDS),
        processed=counts.get("processed", 0),
        retried=counts.get("retried", 0),
        failed=counts.get("failed", 0),
        backlog=activity.backlog.get(index),
    )
