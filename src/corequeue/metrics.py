"""Metrics: the queue-length gauge and job counters, pluggable, wired to prometheus_client.

The queue reports through two small protocols, so any metrics library fits:

- `Gauge`: queue length by `queue` and `channel`. A prometheus_client `Gauge` with those labels
  works as it is (anything with `.labels(...).set(...)`).
- `JobMetrics`: one call per finished attempt with its outcome and handler duration.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

Outcome = Literal["processed", "retried", "failed"]
"""What became of one attempt: acked, sent back for a retry, or moved to `failed`."""


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


def set_gauge(gauge: Gauge | LabelledGauge, value: float, *, queue: str, channel: str) -> None:
    """Record a queue length on either kind of gauge."""
    if isinstance(gauge, LabelledGauge):
        gauge.labels(queue=queue, channel=channel).set(value)
    else:
        gauge.set(value, queue=queue, channel=channel)
