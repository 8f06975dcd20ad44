"""The overview's small chart, drawn as inline SVG on the server: no script, no CDN.

Bars are attempts finished per interval (stacked: processed, retried, failed); a dashed line
is the backlog (waiting + delayed + reserved) on its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from corequeue.web.activity import BUCKET_SECONDS, Bucket

WIDTH = 300
HEIGHT = 64
_GAP = 2


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle of the chart; `kind` is its CSS class."""

    x: float
    y: float
    width: float
    height: float
    kind: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What the template draws, and the words that say the same for screen readers."""

    width: int
    height: int
    bars: list[Bar]
    backlog_points: str
    backlog_dot: tuple[float, float] | None
    finished: int
    per_minute: float
    backlog: int | None
    minutes: int

    @property
    def description(self) -> str:
        """The chart in one sentence."""
        backlog = "not sampled yet" if self.backlog is None else str(self.backlog)
        return (
            f"{self.finished} attempts finished in the last {self.minutes} minutes "
            f"({self.per_minute:g} per minute lately); backlog {backlog}"
        )


def draw(buckets: list[Bucket]) -> Chart:
    """Lay out `buckets` (oldest first) as bars and a backlog line."""
    slot = WIDTH / max(len(buckets), 1)
    tallest = max((bucket.finished for bucket in buckets), default=0) or 1
    bars: list[Bar] = []
    for index, bucket in enumerate(buckets):
        bottom = float(HEIGHT)
        for kind, count in (
            ("processed", bucket.processed),
            ("retried", bucket.retried),
            ("failed", bucket.failed),
        ):
            if count:
                height = (HEIGHT - 4) * count / tallest
                bottom -= height
                bars.append(Bar(index * slot, bottom, slot - _GAP, height, kind))
    sampled = [(index, bucket.backlog) for index, bucket in enumerate(buckets)]
    points = [(index, backlog) for index, backlog in sampled if backlog is not None]
    highest = max((backlog for _, backlog in points), default=0) or 1
    coordinates = [
        (index * slot + (slot - _GAP) / 2, HEIGHT - 2 - (HEIGHT - 4) * value / highest)
        for index, value in points
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    recent = buckets[-2:] if len(buckets) >= 2 else buckets
    per_minute = sum(b.finished for b in recent) * 60 / (BUCKET_SECONDS * max(len(recent), 1))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        backlog_points=line,
        backlog_dot=coordinates[-1] if coordinates else None,
        finished=sum(bucket.finished for bucket in buckets),
        per_minute=round(per_minute, 1),
        backlog=points[-1][1] if points else None,
        minutes=len(buckets) * BUCKET_SECONDS // 60,
    )
