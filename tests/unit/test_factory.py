"""QueueFactory makes shared named queues from a configuration; App runs them together."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import corequeue as cq
from corequeue.config import (
    PostgresSettings,
    QueueSettings,
    RedisQueueSettings,
    SQLiteSettings,
    parse_config,
)
from corequeue.drivers.base import Driver
from corequeue.factory import App, QueueFactory, build_driver
from corequeue.metrics import PrometheusMetrics, prometheus_metrics

MEMORY = {"driver": "memory"}


def memory_factory(*names: str) -> QueueFactory:
    """A factory of in-process queues whose idle pops are short, so consumers stop quickly."""
    config = parse_config({"queue": {name: dict(MEMORY) for name in names}})
    return QueueFactory(config, driver=quick_driver, registry=CollectorRegistry())


def quick_driver(name: str, settings: QueueSettings) -> Driver:
    return cq.InProcessDriver(pop_interval=timedelta(milliseconds=20))


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll `predicate()` until it is true; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


# --- QueueFactory ----------------------------------------------------------------------------


def test_make_returns_one_shared_queue_per_name() -> None:
    factory = memory_factory("emails")

    assert factory.make("emails") is factory.make("emails")
    assert factory.make("emails").name == "emails"
    assert factory.made == {"emails": factory.make("emails")}


def test_default_exists_unconfigured_and_an_unknown_name_lists_the_configured_ones() -> None:
    factory = memory_factory("emails", "reports")

    assert factory.make().name == "default"
    assert factory.settings("default").driver == "sqlite"
    with pytest.raises(cq.InvalidOption, match=r"unknown queue 'nope'.*emails, reports"):
        factory.make("nope")


def test_names_are_the_configured_queues_then_the_others_made() -> None:
    factory = memory_factory("emails")

    factory.make("default")

    assert factory.names == ("emails", "default")


def test_queue_takes_its_settings() -> None:
    config = parse_config(
        {
            "queue": {
                "q": {
                    "driver": "memory",
                    "parallelism": 4,
                    "checkQueueLengthIntervalSecond": 2,
                    "shutdownGraceSecond": 3,
                }
            }
        }
    )

    queue = QueueFactory(config, prometheus=False).make("q")

    assert queue.settings.parallelism == 4
    assert queue.settings.gauge_interval == timedelta(seconds=2)
    assert queue.settings.shutdown_grace == timedelta(seconds=3)


def test_one_driver_instance_serves_every_queue() -> None:
    driver = cq.InProcessDriver()
    factory = QueueFactory(parse_config({"queue": {"a": {}, "b": {}}}), driver=driver)

    assert factory.make("a").driver is driver
    assert factory.make("b").driver is driver
    assert factory.describe("a") == "custom driver InProcessDriver"


def test_a_driver_constructor_gets_the_queue_name_and_settings() -> None:
    calls: list[tuple[str, QueueSettings]] = []

    def construct(name: str, settings: QueueSettings) -> Driver:
        calls.append((name, settings))
        return cq.InProcessDriver()

    factory = QueueFactory(parse_config({"queue": {"a": {"parallelism": 2}}}), driver=construct)
    factory.make("a")

    assert [(name, settings.parallelism) for name, settings in calls] == [("a", 2)]


def test_build_driver_maps_each_driver_name_to_its_class(tmp_path: Path) -> None:
    sqlite = build_driver(QueueSettings("s", "sqlite", store=SQLiteSettings(tmp_path / "s.db")))
    redis = build_driver(
        QueueSettings("r", "redis", store=RedisQueueSettings("r", "redis://:pw@localhost:1/0"))
    )
    postgres = build_driver(
        QueueSettings(
            "p", "postgres", store=PostgresSettings("postgresql://app@localhost:1/app", "jobs")
        )
    )

    assert isinstance(build_driver(QueueSettings("m", "memory")), cq.InProcessDriver)
    assert isinstance(sqlite, cq.SQLiteDriver)
    assert (sqlite.path, sqlite.name) == (tmp_path / "s.db", "s")
    assert type(redis).__name__ == "RedisDriver"
    assert type(postgres).__name__ == "PostgresDriver"
    assert "pw" not in repr(redis)


def test_queues_report_to_prometheus_by_default() -> None:
    registry = CollectorRegistry()
    factory = QueueFactory(parse_config({"queue": {"q": MEMORY}}), registry=registry)

    queue = factory.make("q")

    expected = prometheus_metrics(registry)
    assert queue.gauge is expected.gauge
    assert queue.metrics is expected


def test_two_factories_share_one_registry_without_clashing() -> None:
    registry = CollectorRegistry()

    first = QueueFactory(registry=registry).make()
    second = QueueFactory(registry=registry).make()

    assert first.metrics is second.metrics


def test_metrics_are_pluggable_or_off() -> None:
    class Lengths:
        def set(self, value: float, *, queue: str, channel: str) -> None: ...

    gauge = Lengths()
    custom = QueueFactory(gauge=gauge, registry=CollectorRegistry()).make()
    off = QueueFactory(prometheus=False).make()

    assert custom.gauge is gauge
    assert isinstance(custom.metrics, PrometheusMetrics)
    assert (off.gauge, off.metrics) == (None, None)


async def test_close_closes_every_queue_made() -> None:
    factory = memory_factory("a")
    queue = factory.make("a")

    await factory.close()

    assert factory.made == {}
    assert factory.make("a") is not queue


# --- App ----------------------------------------------------------------------------------------


async def test_app_consumes_every_configured_queue_until_stopped() -> None:
    factory = memory_factory("a", "b")
    seen: list[str] = []
    for name in ("a", "b"):
        factory.make(name).subscribe(cq.listen(str, lambda job: seen.append(job.data)))
        await factory.make(name).dispatch(f"to {name}")

    async with App(factory, handle_signals=False) as app:
        await until(lambda: len(seen) == 2)
        app.stop()
        await app.wait()

    assert sorted(seen) == ["to a", "to b"]


async def test_app_consumes_only_the_chosen_queues() -> None:
    factory = memory_factory("a", "b")
    seen: list[str] = []
    for name in ("a", "b"):
        factory.make(name).subscribe(cq.listen(str, lambda job: seen.append(job.data)))
    b_driver = factory.make("b").driver
    await factory.make("b").dispatch("to b")
    await factory.make("a").dispatch("to a")

    async with App(factory, queues=["a"], handle_signals=False):
        await until(lambda: seen == ["to a"])

    assert (await b_driver.info()).waiting == 1


async def test_app_runs_a_queue_built_elsewhere_and_closes_it() -> None:
    closed: list[bool] = []

    class Recording(cq.InProcessDriver):
        async def close(self) -> None:
            closed.append(True)

    queue = cq.Queue(Recording(pop_interval=timedelta(milliseconds=20)))
    seen: list[int] = []
    queue.subscribe(cq.listen(int, lambda job: seen.append(job.data)))
    await queue.dispatch(7)

    async with App(queues=[queue], handle_signals=False):
        await until(lambda: seen == [7])

    assert closed == [True]


async def test_app_with_an_unknown_queue_fails_before_starting() -> None:
    with pytest.raises(cq.InvalidOption, match="unknown queue 'nope'"):
        async with App(memory_factory("a"), queues=["nope"], handle_signals=False):
            pass


async def test_sigterm_stops_every_consumer_after_in_flight_jobs_finish() -> None:
    factory = memory_factory("a", "b")
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def slow(job: cq.Job) -> None:
        started.set()
        await release.wait()
        finished.append(job.data)

    factory.make("a").subscribe(cq.listen(str, slow))
    driver = factory.make("a").driver
    await factory.make("a").dispatch("in flight")
    app = App(factory)
    running = asyncio.create_task(app.run())
    await started.wait()

    os.kill(os.getpid(), signal.SIGTERM)
    await until(lambda: app.stopping)
    release.set()
    await asyncio.wait_for(running, 10)

    assert finished == ["in flight"]
    assert (await driver.info()).pending == 0


async def test_run_twice_at_once_is_refused() -> None:
    app = App(memory_factory("a"), handle_signals=False)

    async with app:
        with pytest.raises(cq.InvalidOption, match="already running"):
            app.start()
