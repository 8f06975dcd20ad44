"""The worker's Heartbeat: beats and throughput counts, never raising when the store cannot."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from corequeue.drivers.base import WorkerInfo
from corequeue.drivers.in_process import InProcessDriver
from corequeue.heartbeat import Heartbeat

LOG = logging.getLogger("tests.heartbeat")


class Minimal(InProcessDriver):
    """A driver of one's own that has neither beats nor throughput counters."""

    calls: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    async def beat(self, worker: WorkerInfo) -> None:
        self.calls.append("beat")
        raise NotImplementedError

    async def count_finished(self, processed: int, retried: int, failed: int) -> None:
        self.calls.append("count_finished")
        raise NotImplementedError

    async def forget_worker(self, worker_id: str) -> None:
        self.calls.append("forget_worker")
        raise NotImplementedError


async def test_missing_capabilities_are_told_of_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    driver = Minimal()
    heartbeat = Heartbeat(driver, lambda: 0, name="q", log=LOG)

    for _ in range(3):
        heartbeat.tally.add("processed")
        await heartbeat.beat()
    await heartbeat.leave()

    assert driver.calls == ["beat", "count_finished"]
    assert caplog.text.count("Minimal has no beat()") == 1
    assert caplog.text.count("Minimal has no count_finished()") == 1
    assert "cannot" not in caplog.text


async def test_beats_reach_a_store_that_has_them() -> None:
    driver = InProcessDriver()
    heartbeat = Heartbeat(driver, lambda: 2, name="q", log=LOG)

    await heartbeat.beat()

    (listed,) = await driver.workers()
    assert (listed.id, listed.running) == (heartbeat.worker.id, 2)
    assert isinstance(listed.last_seen, datetime)
    await heartbeat.leave()
    assert await driver.workers() == []


class Bare:
    """A driver of one's own with none of the heartbeat methods at all."""


async def test_a_driver_without_the_methods_is_told_of_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    heartbeat = Heartbeat(Bare(), lambda: 0, name="q", log=LOG)  # type: ignore[arg-type]

    for _ in range(3):
        heartbeat.tally.add("processed")
        await heartbeat.beat()
    await heartbeat.leave()

    assert caplog.text.count("Bare has no beat()") == 1
    assert caplog.text.count("Bare has no count_finished()") == 1


class BeatWithABug(InProcessDriver):
    beats = 0

    async def beat(self, worker: WorkerInfo) -> None:
        BeatWithABug.beats += 1
        raise AttributeError("'NoneType' object has no attribute 'hset'")


async def test_an_error_inside_a_real_beat_is_retried_next_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heartbeat = Heartbeat(BeatWithABug(), lambda: 0, name="q", log=LOG)

    for _ in range(3):
        await heartbeat.beat()

    assert BeatWithABug.beats == 3
    assert caplog.text.count("cannot record the worker heartbeat") == 3
