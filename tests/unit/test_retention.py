"""The Pruner: bounded rounds of `Driver.prune`, never raising when the store fails."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from corequeue.drivers.in_process import InProcessDriver
from corequeue.retention import PRUNE_BATCH, STEPS_PER_ROUND, Pruner
from corequeue.testing import FakeClock
from corequeue.testing.jobs import persisted

LOG = logging.getLogger("tests.retention")


async def completed_jobs(driver: InProcessDriver, count: int) -> None:
    await driver.push_many(
        [(persisted(f"j{n}", keep_result=timedelta(seconds=1)), timedelta(0)) for n in range(count)]
    )
    jobs = await driver.pop_many(count)
    assert await driver.ack_many(jobs) == []


async def test_a_round_prunes_at_most_its_steps_of_batches() -> None:
    clock = FakeClock()
    driver = InProcessDriver(clock=clock)
    total = PRUNE_BATCH * STEPS_PER_ROUND + 5
    await completed_jobs(driver, total)
    clock.advance(timedelta(seconds=1))
    pruner = Pruner(driver, None, name="q", log=LOG)

    first = await pruner.prune_round()
    second = await pruner.prune_round()

    assert (first, second) == (PRUNE_BATCH * STEPS_PER_ROUND, 5)
    assert (await driver.info()).completed == 0


class BrokenStore(InProcessDriver):
    async def prune(self, failed_retention: timedelta | None, limit: int) -> int:
        raise ConnectionError("store down")


async def test_a_store_error_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    pruner = Pruner(BrokenStore(), timedelta(days=1), name="q", log=LOG)

    assert await pruner.prune_round() == 0

    assert "cannot prune finished jobs: store down" in caplog.text


class WithoutPrune(InProcessDriver):
    calls = 0

    async def prune(self, failed_retention: timedelta | None, limit: int) -> int:
        WithoutPrune.calls += 1
        raise NotImplementedError


async def test_a_driver_without_prune_is_told_of_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    pruner = Pruner(WithoutPrune(), None, name="q", log=LOG)

    rounds = [await pruner.prune_round() for _ in range(3)]

    assert rounds == [0, 0, 0]
    assert WithoutPrune.calls == 1
    assert caplog.text.count("WithoutPrune has no prune()") == 1
    assert "cannot prune" not in caplog.text


class PruneWithABug(InProcessDriver):
    calls = 0

    async def prune(self, failed_retention: timedelta | None, limit: int) -> int:
        PruneWithABug.calls += 1
        raise AttributeError("'NoneType' object has no attribute 'execute'")


async def test_an_error_inside_a_real_prune_is_retried_next_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pruner = Pruner(PruneWithABug(), None, name="q", log=LOG)

    rounds = [await pruner.prune_round() for _ in range(3)]

    assert rounds == [0, 0, 0]
    assert PruneWithABug.calls == 3  # a failed round, not a missing capability
    assert caplog.text.count("cannot prune finished jobs") == 3
