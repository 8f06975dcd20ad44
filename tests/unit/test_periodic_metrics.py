"""Metrics of periodic slots: every outcome reported by the ticker, the prometheus series."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from corequeue.drivers.in_process import InProcessDriver
from corequeue.metrics import (
    SLOT_OUTCOMES,
    FanOut,
    JobCounts,
    SlotMetrics,
    prometheus_metrics,
)
from corequeue.periodic import MemorySlotStore, Outcome, Schedules, Ticker
from corequeue.queue import Queue
from corequeue.testing import FakeClock

START = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class SlotRecorder:
    """JobMetrics and SlotMetrics that keep every slot observation."""

    seen: list[tuple[str, str, str, float]] = field(default_factory=list)

    def observe(self, queue: str, job_type: str, outcome: Any, duration_seconds: float) -> None:
        pass

    def observe_slot(self, queue: str, schedule: str, outcome: str, late_seconds: float) -> None:
        self.seen.append((queue, schedule, outcome, late_seconds))


class BrokenMetrics:
    """A SlotMetrics whose exporter is down."""

    calls = 0

    def observe_slot(self, queue: str, schedule: str, outcome: str, late_seconds: float) -> None:
        self.calls += 1
        raise ConnectionError("statsd is down")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(clock: FakeClock) -> Queue:
    return Queue(InProcessDriver(clock=clock), name="reports")


def ticker(
    store: Any, clock: FakeClock, schedules: Schedules, queue: Queue, metrics: Any
) -> Ticker:
    return Ticker(store, clock, schedules, queue.persist, metrics=metrics, queue=queue.name)


def test_slot_outcomes_name_every_outcome_of_the_ticker() -> None:
    assert set(SLOT_OUTCOMES) == {outcome.value for outcome in Outcome}


async def test_the_ticker_reports_enqueued_and_taken_slots_with_their_lateness(
    clock: FakeClock, queue: Queue
) -> None:
    metrics = SlotRecorder()
    schedules = Schedules()
    schedules.add("@hourly", "x", name="hourly")
    store = MemorySlotStore(queue.driver)
    first, second = (ticker(store, clock, schedules, queue, metrics) for _ in range(2))
    clock.advance(timedelta(minutes=1))
    await first.tick()
    await second.tick()  # both read the store before the slot
    clock.advance(timedelta(minutes=59, milliseconds=250))

    await first.tick()
    await second.tick()

    assert metrics.seen == [
        ("reports", "hourly", "enqueued", 0.25),
        ("reports", "hourly", "taken", 0.25),
    ]


async def test_the_ticker_reports_skipped_and_failed_slots(clock: FakeClock, queue: Queue) -> None:
    metrics = SlotRecorder()
    schedules = Schedules()
    schedules.add("*/10 * * * *", "x", name="ten")
    schedules.add(timedelta(minutes=10), _broken, name="broken")
    store = MemorySlotStore(queue.driver)
    clock.advance(timedelta(minutes=10))
    await ticker(store, clock, schedules, queue, metrics).tick()

    clock.advance(timedelta(minutes=15))  # every worker down: 12:20 passes
    await ticker(store, clock, schedules, queue, metrics).tick()

    assert [(name, outcome) for _, name, outcome, _ in metrics.seen] == [
        ("ten", "enqueued"),
        ("broken", "failed"),
        ("ten", "skipped"),
    ]
    assert metrics.seen[-1][3] == 300.0


async def test_the_ticker_reports_a_slot_the_stores_clock_has_not_reached(
    clock: FakeClock, queue: Queue
) -> None:
    metrics = SlotRecorder()
    schedules = Schedules()
    schedules.add("@hourly", "x", name="hourly")
    behind = FakeClock(START)  # the store's clock runs a second behind this worker's
    store = MemorySlotStore(queue.driver, clock=behind)
    clock.advance(timedelta(hours=1))
    behind.advance(timedelta(hours=1) - timedelta(seconds=1))

    await ticker(store, clock, schedules, queue, metrics).tick()

    assert metrics.seen == [("reports", "hourly", "early", 0.0)]


async def test_metrics_that_raise_are_logged_once_and_the_ticker_carries_on(
    clock: FakeClock, queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = BrokenMetrics()
    schedules = Schedules()
    schedules.add(timedelta(minutes=1), "x", name="minute")
    store = MemorySlotStore(queue.driver)
    beat = ticker(store, clock, schedules, queue, metrics)

    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            clock.advance(timedelta(minutes=1))
            report = await beat.tick()
            assert [o.outcome for o in report.outcomes] == [Outcome.ENQUEUED]

    assert metrics.calls == 3
    assert (await queue.driver.info()).waiting == 3
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "queue reports: periodic metrics observer failed (1 failures so far); the worker carries on"
    ]


def test_prometheus_counts_slots_by_outcome_and_times_enqueued_ones() -> None:
    registry = CollectorRegistry()
    metrics = prometheus_metrics(registry)
    labels = {"queue": "reports", "schedule": "hourly"}

    metrics.observe_slot("reports", "hourly", "enqueued", 0.004)
    metrics.observe_slot("reports", "hourly", "enqueued", 0.3)
    metrics.observe_slot("reports", "hourly", "taken", 0.01)
    metrics.observe_slot("reports", "hourly", "skipped", 600.0)

    def slots(outcome: str) -> float | None:
        return registry.get_sample_value(
            "corequeue_periodic_slots_total", {**labels, "outcome": outcome}
        )

    assert (slots("enqueued"), slots("taken"), slots("skipped")) == (2, 1, 1)
    assert slots("failed") is None
    lateness = "corequeue_periodic_lateness_seconds"
    assert registry.get_sample_value(f"{lateness}_count", labels) == 2  # enqueued only
    assert registry.get_sample_value(f"{lateness}_bucket", {**labels, "le": "0.005"}) == 1
    assert registry.get_sample_value(f"{lateness}_sum", labels) == pytest.approx(0.304)


def test_fan_out_passes_slots_to_the_receivers_that_count_them() -> None:
    recorder, counts = SlotRecorder(), JobCounts()
    fan_out = FanOut(FanOut(counts, None), recorder)

    fan_out.observe_slot("reports", "hourly", "enqueued", 0.1)

    assert isinstance(fan_out, SlotMetrics)
    assert recorder.seen == [("reports", "hourly", "enqueued", 0.1)]


async def test_a_queue_passes_its_metrics_to_the_ticker_when_they_count_slots(
    clock: FakeClock,
) -> None:
    recorder = SlotRecorder()
    counting = Queue(InProcessDriver(clock=clock), name="counting", metrics=recorder)
    plain = Queue(InProcessDriver(clock=clock), name="plain", metrics=JobCounts())
    for queue in (counting, plain):
        queue.periodic(timedelta(minutes=1), "x", name="minute")
    counting_ticker, plain_ticker = counting._ticker(), plain._ticker()
    assert counting_ticker is not None
    assert plain_ticker is not None
    clock.advance(timedelta(minutes=1))

    await counting_ticker.tick()
    await plain_ticker.tick()

    assert recorder.seen == [("counting", "minute", "enqueued", 0.0)]
    assert plain_ticker._metrics is None


async def test_slot_metrics_reach_prometheus_through_a_consuming_queue(
    clock: FakeClock,
) -> None:
    registry = CollectorRegistry()
    metrics = prometheus_metrics(registry)
    queue = Queue(InProcessDriver(clock=clock), name="beat", metrics=metrics)
    queue.periodic(timedelta(minutes=1), "x", name="minute")
    beat = queue._ticker()
    assert beat is not None
    clock.advance(timedelta(minutes=1))

    await beat.tick()

    labels = {"queue": "beat", "schedule": "minute", "outcome": "enqueued"}
    assert registry.get_sample_value("corequeue_periodic_slots_total", labels) == 1


def _broken(slot: datetime) -> Any:
    raise RuntimeError("no database")
