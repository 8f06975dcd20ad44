"""The store side of a consumer: a stale holder is told, logs it, and changes nothing."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from corequeue.drivers.base import QueueInfo
from corequeue.drivers.in_process import InProcessDriver
from corequeue.job import PersistedJob
from corequeue.metrics import Outcome
from corequeue.settlement import Settlement
from corequeue.testing import FakeClock

LEASE = timedelta(seconds=30)
LOG = logging.getLogger("tests.settlement")


class Recorder:
    def __init__(self) -> None:
        self.observed: list[tuple[str, Outcome]] = []
        self.settled = 0

    def observe(self, job: PersistedJob, outcome: Outcome, duration: float) -> None:
        self.observed.append((job.id, outcome))

    def on_settled(self) -> None:
        self.settled += 1


def settlement_of(driver: InProcessDriver, recorder: Recorder) -> Settlement:
    return Settlement(
        driver, name="q", log=LOG, observe=recorder.observe, on_settled=recorder.on_settled
    )


async def stale_and_current(
    driver: InProcessDriver, clock: FakeClock
) -> tuple[PersistedJob, PersistedJob]:
    """Return the same job popped twice: first by a holder whose lease then ran out."""
    await driver.push(PersistedJob("a", "t", b"1", max_attempts=3), timedelta(0))
    stale = await driver.pop()
    clock.advance(LEASE + timedelta(seconds=1))
    current = await driver.pop()
    return stale, current


async def test_lost_lease_is_logged_once_and_no_longer_renewed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    driver = InProcessDriver(timedelta(milliseconds=10), lease=LEASE, clock=clock)
    stale, current = await stale_and_current(driver, clock)
    settlement = settlement_of(driver, Recorder())
    settlement.hold(stale)

    with caplog.at_level(logging.WARNING, logger=LOG.name):
        await settlement.renew_held()
        await settlement.renew_held()

    lost = [r for r in caplog.records if "lease lost" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].__dict__["job_id"] == "a"
    assert lost[0].__dict__["attempt"] == 1
    assert await driver.renew(current)


async def test_stale_ack_changes_nothing_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    driver = InProcessDriver(timedelta(milliseconds=10), lease=LEASE, clock=clock)
    stale, current = await stale_and_current(driver, clock)
    recorder = Recorder()
    settlement = settlement_of(driver, recorder)
    settlement.hold(stale)

    with caplog.at_level(logging.WARNING, logger=LOG.name):
        settlement.ack_later(stale, 0.1)
        await settlement.ack_pending()

    assert await driver.info() == QueueInfo(reserved=1)
    assert any("not acked" in r.getMessage() for r in caplog.records)
    assert settlement.held_count == 0
    assert recorder.observed == [("a", "processed")]
    assert await driver.ack(current)


@pytest.mark.parametrize("action", ["retry", "fail", "release"])
async def test_stale_retry_fail_or_release_changes_nothing_and_is_logged(
    action: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    driver = InProcessDriver(timedelta(milliseconds=10), lease=LEASE, clock=clock)
    stale, _ = await stale_and_current(driver, clock)
    recorder = Recorder()
    settlement = settlement_of(driver, recorder)
    settlement.hold(stale)

    with caplog.at_level(logging.WARNING, logger=LOG.name):
        await getattr(settlement, action)(stale)

    assert await driver.info() == QueueInfo(reserved=1)
    assert any("no longer this worker's" in r.getMessage() for r in caplog.records)
    assert settlement.held_count == 0
    assert recorder.settled == 1


async def test_a_ring_between_a_look_and_a_wait_is_not_missed() -> None:
    from corequeue.drivers.wakeup import Bell

    bell = Bell()
    seen = bell.rings  # a pop reads this before it looks for jobs
    bell.ring()  # a push from another thread lands while the pop looks

    async with asyncio.timeout(1):  # the wait returns at once, not after its 60 s
        await bell.wait(seen, 60)


def test_stopping_a_loop_thread_releases_a_caller_still_waiting_in_run() -> None:
    import threading

    from corequeue.drivers.derived import LoopThread

    loop_thread = LoopThread("test-loop")
    outcome: list[BaseException] = []
    started = threading.Event()

    async def long_work() -> None:
        started.set()
        await asyncio.sleep(60)

    def call() -> None:
        try:
            loop_thread.run(long_work())
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(5)

    loop_thread.stop()
    caller.join(5)

    assert not caller.is_alive()
    assert len(outcome) == 1
