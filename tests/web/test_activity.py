"""The chart's figures: attempts counted per interval, backlog samples, and their drawing."""

from __future__ import annotations

from corequeue.drivers.base import QueueInfo
from corequeue.drivers.in_process import InProcessDriver
from corequeue.metrics import FanOut, JobCounts
from corequeue.queue import Queue
from corequeue.web import ActivityRecorder, create_app
from corequeue.web.activity import BUCKET_SECONDS, SAMPLE_SECONDS, WINDOW_BUCKETS, Bucket
from corequeue.web.chart import HEIGHT, draw


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_010.0  # a bucket boundary: 30 divides it

    def __call__(self) -> float:
        return self.now


def test_attempts_are_counted_per_interval_by_outcome() -> None:
    clock = Clock()
    recorder = ActivityRecorder(clock)

    recorder.observe("q", "t", "processed", 0.1)
    recorder.observe("q", "t", "failed", 0.1)
    clock.now += BUCKET_SECONDS
    recorder.observe("q", "t", "retried", 0.1)
    recorder.observe("other", "t", "processed", 0.1)

    buckets = recorder.buckets("q")
    assert len(buckets) == WINDOW_BUCKETS
    assert buckets[-2:] == [
        Bucket(clock.now - BUCKET_SECONDS, processed=1, failed=1),
        Bucket(clock.now, retried=1),
    ]


def test_counts_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    recorder = ActivityRecorder(clock)
    recorder.observe("q", "t", "processed", 0.1)

    clock.now += BUCKET_SECONDS * WINDOW_BUCKETS

    assert sum(bucket.finished for bucket in recorder.buckets("q")) == 0


def test_backlog_is_sampled_at_most_every_few_seconds() -> None:
    clock = Clock()
    recorder = ActivityRecorder(clock)

    recorder.sample("q", QueueInfo(waiting=3, delayed=2, reserved=1, failed=9))
    recorder.sample("q", QueueInfo(waiting=100))
    early = recorder.needs_sample("q")
    clock.now += SAMPLE_SECONDS
    later = recorder.needs_sample("q")

    assert recorder.buckets("q")[-1].backlog == 6
    assert (early, later) == (False, True)
    assert recorder.needs_sample("never-seen")


def test_create_app_adds_the_recorder_to_the_queue_metrics_once() -> None:
    counts = JobCounts()
    queue = Queue(InProcessDriver(), metrics=counts)
    recorder = ActivityRecorder()

    create_app({"default": queue}, recorder=recorder)
    create_app({"default": queue}, recorder=recorder)
    assert queue.metrics is not None
    queue.metrics.observe("default", "t", "processed", 0.01)

    assert isinstance(queue.metrics, FanOut)
    assert queue.metrics.receivers == (counts, recorder)
    assert counts.of("default")["processed"] == 1
    assert recorder.buckets("default")[-1].processed == 1


def test_chart_stacks_outcomes_and_scales_to_the_busiest_interval() -> None:
    buckets = [Bucket(0.0), Bucket(30.0, processed=2, failed=2), Bucket(60.0, processed=1)]

    chart = draw(buckets)

    assert [(bar.kind, round(bar.height)) for bar in chart.bars] == [
        ("processed", 30),
        ("failed", 30),
        ("processed", 15),
    ]
    assert chart.bars[1].y + chart.bars[1].height == chart.bars[0].y  # stacked on top
    assert chart.finished == 5
    assert chart.per_minute == 5.0  # the last two intervals: 5 attempts a minute


def test_chart_draws_the_backlog_line_and_says_what_it_shows() -> None:
    buckets = [Bucket(0.0, backlog=10), Bucket(30.0), Bucket(60.0, backlog=0)]

    chart = draw(buckets)

    assert chart.backlog_points == "49.0,2.0 249.0,62.0"
    assert chart.backlog_dot == (249.0, HEIGHT - 2)
    assert chart.description == (
        "0 attempts finished in the last 1 minutes (0 per minute lately); backlog 0"
    )


def test_empty_chart_has_no_bars_and_no_line() -> None:
    chart = draw([Bucket(0.0), Bucket(30.0)])

    assert (chart.bars, chart.backlog_points, chart.backlog_dot) == ([], "", None)
    assert "backlog not sampled yet" in chart.description
