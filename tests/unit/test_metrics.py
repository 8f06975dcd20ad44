"""The prometheus_client adapters: gauge, counters and histogram by queue; counts for the status."""

from __future__ import annotations

import subprocess
import sys

from prometheus_client import CollectorRegistry

from corequeue.metrics import (
    FanOut,
    JobCounts,
    LabelledGauge,
    prometheus_metrics,
    set_gauge,
)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_collectors_are_registered_once_per_registry_and_prefix() -> None:
    registry = CollectorRegistry()

    first = prometheus_metrics(registry)

    assert prometheus_metrics(registry) is first
    assert prometheus_metrics(registry, namespace="app", subsystem="env") is not first
    assert prometheus_metrics(CollectorRegistry()) is not first


def test_gauge_records_queue_length_by_queue_and_channel() -> None:
    registry = CollectorRegistry()
    metrics = prometheus_metrics(registry)

    set_gauge(metrics.gauge, 3, queue="emails", channel="waiting")

    assert isinstance(metrics.gauge, LabelledGauge)
    assert sample(registry, "corequeue_queue_length", queue="emails", channel="waiting") == 3


def test_each_outcome_has_a_counter_and_every_attempt_is_timed() -> None:
    registry = CollectorRegistry()
    metrics = prometheus_metrics(registry)
    labels = {"queue": "emails", "job_type": "app.Send"}

    metrics.observe("emails", "app.Send", "processed", 0.2)
    metrics.observe("emails", "app.Send", "processed", 0.3)
    metrics.observe("emails", "app.Send", "retried", 1.0)
    metrics.observe("emails", "app.Send", "failed", 2.0)

    assert sample(registry, "corequeue_jobs_processed_total", **labels) == 2
    assert sample(registry, "corequeue_jobs_retried_total", **labels) == 1
    assert sample(registry, "corequeue_jobs_failed_total", **labels) == 1
    assert sample(registry, "corequeue_job_duration_seconds_count", **labels) == 4
    assert sample(registry, "corequeue_job_duration_seconds_sum", **labels) == 3.5
    assert sample(registry, "corequeue_job_duration_seconds_bucket", le="0.25", **labels) == 1


def test_namespace_and_subsystem_prefix_every_name() -> None:
    registry = CollectorRegistry()
    metrics = prometheus_metrics(registry, namespace="app", subsystem="env")

    set_gauge(metrics.gauge, 1, queue="default", channel="failed")

    assert sample(registry, "app_env_queue_length", queue="default", channel="failed") == 1


def test_job_counts_and_fan_out() -> None:
    counts, more = JobCounts(), JobCounts()
    fan_out = FanOut(counts, None, more)

    fan_out.observe("a", "t", "processed", 0.1)
    fan_out.observe("a", "t", "failed", 0.1)

    assert counts.of("a") == more.of("a") == {"processed": 1, "retried": 0, "failed": 1}
    assert counts.of("b") == {"processed": 0, "retried": 0, "failed": 0}


def test_importing_corequeue_does_not_import_prometheus_client() -> None:
    code = "import sys, corequeue, corequeue.factory; print('prometheus_client' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.stdout.strip() == "False", result.stderr
