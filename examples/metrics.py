"""Metrics: the queue-length gauge is registered, a job prints a line, then a scrape shows it.

The queue reports its length by channel every `checkQueueLengthIntervalSecond` (0.1 s here).
Once the job is done, the example reads its own prometheus registry in the text format a
Prometheus server scrapes, and prints the `queue_length` series and the job counter. Prints:
    hello world
    app_env_queue_length{channel="waiting",queue="default"} 0.0
    app_env_queue_length{channel="delayed",queue="default"} 0.0
    app_env_queue_length{channel="reserved",queue="default"} 0.0
    app_env_queue_length{channel="failed",queue="default"} 0.0
    app_env_queue_length{channel="timeout",queue="default"} 0.0
    app_env_queue_length{channel="completed",queue="default"} 0.0
    app_env_jobs_processed_total{job_type="__main__.MockMetricsData",queue="default"} 1.0
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

import corequeue as cq
from corequeue.config import parse_config
from corequeue.factory import App, QueueFactory
from corequeue.metrics import prometheus_metrics

SAMPLE_CONFIG = {"queue": {"default": {"parallelism": 1, "checkQueueLengthIntervalSecond": 0.1}}}


@dataclass
class MockMetricsData:
    value: str


class MockMetricsListener:
    def __init__(self) -> None:
        self.done = asyncio.Event()

    def listen(self) -> type[MockMetricsData]:
        return MockMetricsData

    async def process(self, job: cq.Job) -> None:
        print(job.data.value)
        self.done.set()


async def main() -> None:
    # As the Go example: a gauge named queue_length under the app name and environment.
    registry = CollectorRegistry()
    metrics = prometheus_metrics(registry, namespace="app", subsystem="env")

    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(SAMPLE_CONFIG, base_dir=Path(folder))
        factory = QueueFactory(config, gauge=metrics.gauge, metrics=metrics)
        queue = factory.make()
        listener = MockMetricsListener()
        queue.subscribe(listener)
        await queue.dispatch(cq.job_from(MockMetricsData(value="hello world")))

        async with App(factory):
            await listener.done.wait()
            await gauge_reads_empty(registry)

    for line in scrape(registry):
        if "queue_length{" in line or "jobs_processed_total{" in line:
            print(line)


async def gauge_reads_empty(registry: CollectorRegistry) -> None:
    """Wait until the gauge has been refreshed after the job: every channel reads 0.

    From dispatch to ack the job is in `waiting` or `reserved`, so an all-zero reading can
    only come from a refresh made after the job was done.
    """
    while True:
        lengths = [line for line in scrape(registry) if line.startswith("app_env_queue_length{")]
        if len(lengths) == len(cq.Channel) and all(line.endswith(" 0.0") for line in lengths):
            return
        await asyncio.sleep(0.05)


def scrape(registry: CollectorRegistry) -> list[str]:
    """Return the registry in the Prometheus text format, one line per item."""
    return generate_latest(registry).decode().splitlines()


if __name__ == "__main__":
    asyncio.run(main())
