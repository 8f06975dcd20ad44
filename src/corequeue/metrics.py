"""Metrics: the queue-length gauge, job and periodic slot counters, wired to prometheus_client.

The queue reports through small protocols, so any metrics library fits:

- `Gauge`: queue length by `queue` and `channel`. A prometheus_client `Gauge` with those labels
  works as it is (anything with `.labels(...).set(...)`).
- `JobMetrics`: one call per finished attempt with its outcome and handler duration.
- `SlotMetrics`: one call per due slot of a periodic schedule with its outcome and how late the
  tick was; a queue's `metrics=` object that also has `observe_slot` receives them.
- `HeldBackMetrics`: how many times the queue's limits held a due job back, by reason, reported
  every gauge interval; a `metrics=` object that also has `observe_held_back` receives them.

`prometheus_metrics()` provides all three for prometheus_client (imported by this module only,
and only when asked for); `serve_metrics()` exposes them over HTTP.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

Outcome = Literal["processed", "retried", "failed"]
"""What became of one attempt: acked, sent back for a retry, or moved to `failed`."""

SLOT_OUTCOMES: Final = ("enqueued", "taken", "skipped", "failed", "early")
"""What a tick may do with a due slot of a periodic schedule (`corequeue.periodic.Outcome`)."""


@runtime_checkable
class Gauge(Protocol):
    """Receives queue lengths: `set(value, queue="default", channel="waiting")`."""

    def set(self, value: float, *, queue: str, channel: str) -> None:
        """Record `value` for the series of `queue` and `channel`."""
        ...


@runtime_checkable
class LabelledGauge(Protocol):
    """A prometheus_client-style gauge: `labels(queue=..., channel=...).set(value)`."""

    def labels(self, *args: str, **labels: str) -> Any:
        """Return the child series for these labels."""
        ...


@runtime_checkable
class JobMetrics(Protocol):
    """Counts attempts by outcome and times handlers."""

    def observe(self, queue: str, job_type: str, outcome: Outcome, duration_seconds: float) -> None:
        """Record one finished attempt of a job of `job_type`."""
        ...


@runtime_checkable
class HeldBackMetrics(Protocol):
    """Counts how often flow-control limits held a due job back (see docs/flow-control.md)."""

    def observe_held_back(self, queue: str, reason: str, count: int) -> None:
        """Record `count` more holds of `queue`'s jobs by limit `reason`.

        Args:
            queue: The queue's name.
            reason: `concurrency`, `group_concurrency`, `rate` or `group_rate`.
            count: Holds since the last report (at least 1).
        """
        ...


@runtime_checkable
class SlotMetrics(Protocol):
    """Counts the due slots of periodic schedules by outcome and times how late they ran."""

    def observe_slot(self, queue: str, schedule: str, outcome: str, late_seconds: float) -> None:
        """Record what one tick did with one due slot.

        Args:
            queue: The queue's name.
            schedule: The schedule's name.
            outcome: One of SLOT_OUTCOMES: `enqueued` (this worker pushed the slot's job),
                `taken` (another worker had), `skipped` (a misfire dropped it), `failed` (the
                job could not be built, or the store did not answer) or `early` (the store's
                clock had not reached the slot yet).
            late_seconds: How long after the slot the tick ran (never negative).
        """
        ...


def set_gauge(gauge: Gauge | LabelledGauge, value: float, *, queue: str, channel: str) -> None:
    """Record a queue length on either kind of gauge."""
    if isinstance(gauge, LabelledGauge):
        gauge.labels(queue=queue, channel=channel).set(value)
    else:
        gauge.set(value, queue=queue, channel=channel)


# --- prometheus_client -------------------------------------------------------------------------

DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)  # fmt: skip
"""Histogram buckets of handler duration, in seconds: milliseconds up to the 1-hour timeout."""

LATENESS_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300, 3600, 86400,
)  # fmt: skip
"""Histogram buckets of how late an enqueued slot was, in seconds: a running worker wakes at
the slot (milliseconds late); a misfire catch-up (`once`) may be hours or days late."""


_COUNTER_HELP: dict[Outcome, str] = {
    "processed": "Attempts that succeeded.",
    "retried": "Failed attempts sent back for a retry.",
    "failed": "Jobs moved to the failed channel, out of attempts.",
}


class PrometheusMetrics:
    """The queue-length gauge, job and slot counters and histograms, in one prometheus registry.

    Use `prometheus_metrics()` to get one: collectors are registered once per registry and
    name prefix, and shared by every queue and factory that asks for them.

    Series (with the default namespace `corequeue`):

    - `corequeue_queue_length{queue, channel}`: jobs in each channel, a gauge.
    - `corequeue_jobs_processed_total{queue, job_type}`: attempts that succeeded.
    - `corequeue_jobs_retried_total{queue, job_type}`: failed attempts sent back for a retry.
    - `corequeue_jobs_failed_total{queue, job_type}`: jobs moved to `failed` (out of attempts).
    - `corequeue_job_duration_seconds{queue, job_type}`: handler duration of every attempt.
    - `corequeue_periodic_slots_total{queue, schedule, outcome}`: due slots of periodic
      schedules seen by this worker's ticks, by outcome (`enqueued`, `taken`, `skipped`,
      `failed`, `early`). Across all workers, `enqueued` counts each slot once.
    - `corequeue_periodic_lateness_seconds{queue, schedule}`: how long after its slot each
      slot this worker enqueued was enqueued.
    - `corequeue_jobs_held_back_total{queue, reason}`: times this worker's pops left a due job
      waiting because of a flow-control limit (`concurrency`, `group_concurrency`, `rate`,
      `group_rate`).

    Attributes:
        gauge: The queue-length gauge; pass it as `Queue(gauge=...)`.
        registry: The registry holding the collectors.

    Example:
        >>> from prometheus_client import CollectorRegistry
        >>> metrics = prometheus_metrics(CollectorRegistry())
        >>> queue = Queue(driver, gauge=metrics.gauge, metrics=metrics)  # doctest: +SKIP
    """

    def __init__(self, registry: CollectorRegistry, namespace: str, subsystem: str) -> None:
        from prometheus_client import Counter, Histogram
        from prometheus_client import Gauge as PrometheusGauge

        prefix = "".join(f"{part}_" for part in (namespace, subsystem) if part)
        job_labels = ("queue", "job_type")
        self.registry = registry
        self.gauge = PrometheusGauge(
            f"{prefix}queue_length",
            "Jobs in each channel of a queue.",
            ("queue", "channel"),
            registry=registry,
        )
        self._counters: dict[Outcome, Counter] = {
            outcome: Counter(f"{prefix}jobs_{outcome}", text, job_labels, registry=registry)
            for outcome, text in _COUNTER_HELP.items()
        }
        self._duration = Histogram(
            f"{prefix}job_duration_seconds",
            "How long the listeners of one attempt ran.",
            job_labels,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        slot_labels = ("queue", "schedule")
        self._slots = Counter(
            f"{prefix}periodic_slots",
            "Due slots of periodic schedules, by what this worker's tick did with them.",
            (*slot_labels, "outcome"),
            registry=registry,
        )
        self._lateness = Histogram(
            f"{prefix}periodic_lateness_seconds",
            "How long after its slot each slot this worker enqueued was enqueued.",
            slot_labels,
            registry=registry,
            buckets=LATENESS_BUCKETS,
        )
        self._held_back = Counter(
            f"{prefix}jobs_held_back",
            "Times this worker's pops left a due job waiting because of a limit.",
            ("queue", "reason"),
            registry=registry,
        )

    def observe_held_back(self, queue: str, reason: str, count: int) -> None:
        """Count `count` holds of `queue`'s jobs by limit `reason`."""
        self._held_back.labels(queue=queue, reason=reason).inc(count)

    def observe(self, queue: str, job_type: str, outcome: Outcome, duration_seconds: float) -> None:
        """Count one finished attempt and record its handler duration."""
        self._counters[outcome].labels(queue=queue, job_type=job_type).inc()
        self._duration.labels(queue=queue, job_type=job_type).observe(duration_seconds)

    def observe_slot(self, queue: str, schedule: str, outcome: str, late_seconds: float) -> None:
        """Count one due slot by outcome; time an enqueued one's lateness."""
        self._slots.labels(queue=queue, schedule=schedule, outcome=outcome).inc()
        if outcome == "enqueued":
            self._lateness.labels(queue=queue, schedule=schedule).observe(late_seconds)


_registered: weakref.WeakKeyDictionary[
    CollectorRegistry, dict[tuple[str, str], PrometheusMetrics]
] = weakref.WeakKeyDictionary()
_registering = threading.Lock()


def prometheus_metrics(
    registry: CollectorRegistry | None = None, *, namespace: str = "corequeue", subsystem: str = ""
) -> PrometheusMetrics:
    """Return the corequeue collectors of `registry`, registering them on first use.

    Registering a metric name twice in one registry is an error in prometheus_client, so this
    keeps one `PrometheusMetrics` per registry and prefix (the only state this module holds; it
    lives as long as the registry does).

    Args:
        registry: A `prometheus_client.CollectorRegistry` (default: the global `REGISTRY`).
        namespace: First part of every metric name (Go: the app name).
        subsystem: Second part of every metric name (Go: the environment), or empty.

    Example:
        >>> metrics = prometheus_metrics(namespace="app", subsystem="prod")
        >>> queue = Queue(driver, gauge=metrics.gauge, metrics=metrics)  # doctest: +SKIP
    """
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    with _registering:
        known = _registered.setdefault(registry, {})
        if (namespace, subsystem) not in known:
            known[namespace, subsystem] = PrometheusMetrics(registry, namespace, subsystem)
        return known[namespace, subsystem]


def serve_metrics(
    port: int, host: str = "0.0.0.0", registry: CollectorRegistry | None = None
) -> tuple[str, int]:
    """Serve `/metrics` of `registry` over HTTP from a daemon thread; return the bound address.

    Args:
        port: The TCP port; 0 picks a free one (read it from the result).
        host: The address to listen on.
        registry: The registry to expose (default: the global `REGISTRY`).
    """
    from prometheus_client import REGISTRY, start_http_server

    server, _ = start_http_server(port, addr=host, registry=registry or REGISTRY)
    bound_host, bound_port = server.server_address[:2]
    return str(bound_host), int(bound_port)


# --- composing -----------------------------------------------------------------------------------


class JobCounts:
    """Counts attempts by queue and outcome in memory: the worker's live status reads it.

    Example:
        >>> counts = JobCounts()
        >>> counts.observe("default", "app.Email", "processed", 0.01)
        >>> counts.of("default")["processed"]
        1
    """

    def __init__(self) -> None:
        self._counts: dict[str, dict[Outcome, int]] = {}
        self._lock = threading.Lock()

    def observe(self, queue: str, job_type: str, outcome: Outcome, duration_seconds: float) -> None:
        """Count one finished attempt."""
        with self._lock:
            counts = self._counts.setdefault(queue, {"processed": 0, "retried": 0, "failed": 0})
            counts[outcome] += 1

    def of(self, queue: str) -> dict[Outcome, int]:
        """Return the counts of `queue` so far, by outcome."""
        with self._lock:
            return dict(self._counts.get(queue, {"processed": 0, "retried": 0, "failed": 0}))


class FanOut:
    """Passes every observation on to several JobMetrics in order; slots to those counting them.

    Example:
        >>> queue.metrics = FanOut(queue.metrics, JobCounts())  # doctest: +SKIP
    """

    def __init__(self, *receivers: JobMetrics | None) -> None:
        self.receivers = tuple(receiver for receiver in receivers if receiver is not None)

    def observe(self, queue: str, job_type: str, outcome: Outcome, duration_seconds: float) -> None:
        """Record one finished attempt in every receiver."""
        for receiver in self.receivers:
            receiver.observe(queue, job_type, outcome, duration_seconds)

    def observe_slot(self, queue: str, schedule: str, outcome: str, late_seconds: float) -> None:
        """Record one due slot in every receiver that counts slots."""
        for receiver in self.receivers:
            if isinstance(receiver, SlotMetrics):
                receiver.observe_slot(queue, schedule, outcome, late_seconds)

    def observe_held_back(self, queue: str, reason: str, count: int) -> None:
        """Record holds in every receiver that counts them."""
        for receiver in self.receivers:
            if isinstance(receiver, HeldBackMetrics):
                receiver.observe_held_back(queue, reason, count)
