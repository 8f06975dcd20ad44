"""Periodic jobs end to end, on every driver: consumers tick, each slot runs exactly once."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import datetime, timedelta

import corequeue as cq
from corequeue.drivers.base import Driver
from corequeue.periodic import parse_slot_job_id
from tests.integration.conftest import consuming, eventually

EVERY = timedelta(milliseconds=250)


async def test_two_consumers_enqueue_each_slot_once_and_never_early(driver: Driver) -> None:
    queue = cq.Queue(driver, parallelism=4)
    runs: Counter[int] = Counter()
    started_late_by: list[float] = []

    async def beat(job: cq.ReceivedJob) -> None:
        parsed = parse_slot_job_id(job.id)
        assert parsed is not None
        name, slot_ms = parsed
        assert name == "beat"
        runs[slot_ms] += 1
        started_late_by.append(time.time() - slot_ms / 1000)

    queue.subscribe(cq.listen(str, beat))
    queue.periodic(EVERY, "tick", name="beat")

    async with consuming(queue), consuming(queue):
        await eventually(lambda: _true(len(runs) >= 5), within=15)

    slots = sorted(runs)
    assert all(count == 1 for count in runs.values()), runs
    assert all(b - a == 250 for a, b in itertools.pairwise(slots)), slots
    assert min(started_late_by) >= 0  # never before its slot


async def test_a_job_callable_gets_the_slot_datetime(driver: Driver) -> None:
    queue = cq.Queue(driver)
    seen: list[str] = []
    queue.subscribe(cq.listen(str, lambda job: seen.append(job.data)))

    def make(slot: datetime) -> str:
        return slot.isoformat()

    queue.periodic(EVERY, make, name="stamped", tz="Europe/Berlin")

    async with consuming(queue):
        await eventually(lambda: _true(len(seen) >= 1), within=10)

    stamp = datetime.fromisoformat(seen[0])
    assert stamp.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    assert (stamp.timestamp() * 1000) % 250 == 0


async def test_periodic_schedules_lists_next_and_last_run(driver: Driver) -> None:
    queue = cq.Queue(driver)
    queue.subscribe(cq.listen(str, lambda job: None))
    queue.periodic("0 7 * * *", "report", name="daily", tz="Europe/Berlin")
    queue.periodic(EVERY, "tick", name="often")

    async with consuming(queue):
        await eventually(lambda: _last_run_known(queue, "often"), within=10)
    infos = {info.name: info for info in await queue.periodic_schedules()}

    assert isinstance(infos["daily"], cq.PeriodicInfo)
    assert infos["daily"].next_run is not None
    assert (infos["daily"].next_run.hour, infos["daily"].next_run.minute) == (7, 0)
    assert infos["daily"].last_run is None
    assert infos["often"].last_run is not None


async def _last_run_known(queue: cq.Queue, name: str) -> bool:
    infos = {info.name: info for info in await queue.periodic_schedules()}
    return infos[name].last_run is not None


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
