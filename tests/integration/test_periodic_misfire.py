"""Misfires on every driver: every worker stops, slots pass, workers restart.

The drivers run on a `WallClock`, which the test moves forward to make minutes pass at once:
the schedule is one slot a minute, every worker stops after one slot, five and a half minutes
pass (far beyond the tolerance of two seconds), and two workers restart together. With
`misfire="skip"` no catch-up job runs; with `"once"` exactly one does, with the id of the latest
missed slot. Then the schedule goes on with its next slot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

import corequeue as cq
from corequeue.drivers.base import Driver
from corequeue.periodic import parse_slot_job_id
from tests.integration.conftest import consuming, eventually
from tests.support.clocks import WallClock

EVERY = timedelta(minutes=1)
LEAD = timedelta(milliseconds=500)
"""How long before a slot the clock is put, so a worker is ticking when the slot comes."""


@dataclass
class Worker:
    """What the restarted workers report: the slots' jobs run, and every tick's outcomes."""

    runs: Counter[int] = field(default_factory=Counter)
    outcomes: list[tuple[str, str]] = field(default_factory=list)

    def queue(self, driver: Driver, misfire: str) -> cq.Queue:
        """A worker's queue: one schedule, its jobs recorded, its slots observed."""
        queue = cq.Queue(driver, metrics=self)
        queue.subscribe(cq.listen(str, self.record))
        queue.periodic(EVERY, "tick", name="beat", misfire=misfire)
        return queue

    def record(self, job: cq.ReceivedJob) -> None:
        parsed = parse_slot_job_id(job.id)
        assert parsed is not None
        self.runs[parsed[1]] += 1

    def observe(self, queue: str, job_type: str, outcome: Any, duration_seconds: float) -> None:
        pass

    def observe_slot(self, queue: str, schedule: str, outcome: str, late_seconds: float) -> None:
        self.outcomes.append((schedule, outcome))


def before_next_slot(clock: WallClock) -> int:
    """Move the clock to LEAD before a coming slot; return that slot (epoch ms)."""
    every_us, lead_us = EVERY // timedelta(microseconds=1), LEAD // timedelta(microseconds=1)
    now_us = clock.now_us()
    slot_us = ((now_us + lead_us) // every_us + 1) * every_us
    clock.advance(timedelta(microseconds=slot_us - lead_us - now_us))
    return slot_us // 1000


@pytest.mark.parametrize("misfire", ["skip", "once"])
async def test_after_every_worker_paused_skip_runs_nothing_missed_and_once_runs_one(
    driver: Driver, misfire: str
) -> None:
    clock = driver.clock
    assert isinstance(clock, WallClock)
    before, after = Worker(), Worker()
    minute_ms = EVERY // timedelta(milliseconds=1)

    first = before_next_slot(clock)
    async with consuming(before.queue(driver, misfire)):
        await eventually(lambda: _true(before.runs[first] == 1))
    clock.advance(5 * EVERY + timedelta(seconds=30))  # no worker: five slots pass
    missed = [first + n * minute_ms for n in range(1, 6)]
    async with consuming(after.queue(driver, misfire)), consuming(after.queue(driver, misfire)):
        if misfire == "once":
            await eventually(lambda: _true(after.runs[missed[-1]] == 1))
        else:
            await eventually(lambda: _true(("beat", "skipped") in after.outcomes))
        resumed = before_next_slot(clock)
        await eventually(lambda: _true(after.runs[resumed] == 1))
    slots = await driver.schedule_slots()

    catch_up = [missed[-1]] if misfire == "once" else []
    assert before.runs == {first: 1}
    assert after.runs == Counter({slot: 1 for slot in [*catch_up, resumed]})
    assert slots == {"beat": resumed}
    outcomes = Counter(after.outcomes)
    assert outcomes["beat", "enqueued"] == len(catch_up) + 1  # across both workers
    assert (outcomes["beat", "skipped"] > 0) == (misfire == "skip")


async def _true(value: bool) -> bool:
    return value
