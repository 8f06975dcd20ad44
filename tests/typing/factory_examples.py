"""Usage of configuration, QueueFactory, App and metrics that only mypy runs."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

import corequeue as cq
from corequeue.config import Config, QueueSettings, load_config, parse_config
from corequeue.factory import App, QueueFactory
from corequeue.metrics import JobMetrics, Outcome, prometheus_metrics


class Lengths:
    """A gauge of one's own: any object with this `set` fits `gauge=`."""

    def set(self, value: float, *, queue: str, channel: str) -> None: ...


class Timings:
    """Job metrics of one's own: any object with this `observe` fits `metrics=`."""

    def observe(self, queue: str, job_type: str, outcome: Outcome, duration_seconds: float) -> None:
        print(queue, job_type, outcome, duration_seconds)


def driver_of(name: str, settings: QueueSettings) -> cq.Driver:
    return cq.SQLiteDriver(Path("/var/lib/app") / f"{name}.db", name=name)


async def run() -> None:
    config: Config = load_config()
    factory = QueueFactory(config, driver=driver_of, gauge=Lengths(), metrics=Timings())
    emails: cq.Queue = factory.make("emails")
    emails.subscribe(cq.listen(str, lambda job: None))
    await App(factory, queues=["emails"]).run()

    shared = QueueFactory(
        parse_config({"queue": {"q": {"driver": "memory"}}}), driver=cq.InProcessDriver()
    )
    async with App(shared, handle_signals=False) as app:
        app.stop()
        await app.wait()

    metrics = prometheus_metrics(CollectorRegistry(), namespace="app", subsystem="prod")
    receiver: JobMetrics = metrics
    QueueFactory(gauge=metrics.gauge, metrics=receiver, prometheus=False)
