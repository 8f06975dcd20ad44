"""A running worker serves /metrics: queue-length gauge, job counters and duration histogram."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import corequeue as cq
from tests.cli.support import Project, Worker, eventually
from tests.cli.worker_app import Greeting

JOB_TYPE = "tests.cli.worker_app.Greeting"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Return every sample served at /metrics, keyed by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def announced_port(worker: Worker) -> int | None:
    for line in worker.output().splitlines():
        event = json.loads(line)
        if event.get("event") == "announce" and "port" in event:
            return int(event["port"])
    return None


async def test_worker_serves_gauge_counters_and_histogram_with_their_labels(
    project: Project,
) -> None:
    never_heals = project.folder / "broken"
    never_heals.touch()
    await project.dispatch(Greeting("one"), Greeting("two"))
    await project.dispatch(cq.adjust(Greeting("bad", fail_while=str(never_heals)), max_attempts=2))
    job = {("queue", project.queue), ("job_type", JOB_TYPE)}
    channel = {("queue", project.queue), ("channel", "failed")}
    expected = {
        ("corequeue_jobs_processed_total", frozenset(job)): 2.0,
        ("corequeue_jobs_retried_total", frozenset(job)): 1.0,
        ("corequeue_jobs_failed_total", frozenset(job)): 1.0,
        ("corequeue_job_duration_seconds_count", frozenset(job)): 4.0,
        ("corequeue_queue_length", frozenset(channel)): 1.0,
        (
            "corequeue_queue_length",
            frozenset({("queue", project.queue), ("channel", "waiting")}),
        ): 0.0,
    }
    samples: Samples = {}

    async def served() -> bool:
        nonlocal samples
        samples = await asyncio.to_thread(scrape, port)
        return all(samples.get(key) == value for key, value in expected.items())

    with Worker(project, "--metrics-port", "0", "--metrics-host", "127.0.0.1", "--json") as worker:
        await eventually(lambda: announced_port(worker) is not None, "the metrics address")
        port = announced_port(worker) or 0
        await eventually(served, lambda: f"the expected samples (last scrape: {samples})")
        assert worker.stop() == 0, worker.errors()

    buckets = [key for key in samples if key[0] == "corequeue_job_duration_seconds_bucket"]
    assert {label for key in buckets for label in key[1]} >= job | {("le", "+Inf")}
