"""The ticker: never early, exactly once across tickers sharing a store, misfires, job factories."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from corequeue.codec import JsonCodec
from corequeue.drivers.in_process import InProcessDriver
from corequeue.errors import StoreUnavailable
from corequeue.job import PersistedJob, adjust
from corequeue.periodic import (
    MemorySlotStore,
    Outcome,
    Schedules,
    Ticker,
    TickerSettings,
    TickReport,
)
from corequeue.queue import Queue
from corequeue.testing import FakeClock

START = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(milliseconds=1)


@dataclass
class Recorder:
    """A driver's push that records each job with the clock's reading when it was pushed."""

    clock: FakeClock
    pushed: list[tuple[str, int]] = field(default_factory=list)
    jobs: list[PersistedJob] = field(default_factory=list)
    failures: int = 0
    interleave: bool = False

    async def push(self, job: PersistedJob, delay: timedelta) -> None:
        assert delay == timedelta(0)
        if self.interleave:
            await asyncio.sleep(0)  # a yield, not a wait: lets other tickers run in between
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("memory", "down")
        self.pushed.append((job.id, self.clock.now_us()))
        self.jobs.append(job)

    @property
    def ids(self) -> list[str]:
        return [job_id for job_id, _ in self.pushed]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def recorder(clock: FakeClock) -> Recorder:
    return Recorder(clock)


@pytest.fixture
def store(recorder: Recorder) -> MemorySlotStore:
    return MemorySlotStore(recorder)


@pytest.fixture
def queue(clock: FakeClock) -> Queue:
    """A queue only used to build envelopes, as the consumer will."""
    return Queue(InProcessDriver(clock=clock))


def ticker_of(
    store: MemorySlotStore,
    clock: FakeClock,
    schedules: Schedules,
    queue: Queue,
    **settings: Any,
) -> Ticker:
    return Ticker(store, clock, schedules, queue.persist, settings=TickerSettings(**settings))


def outcomes(report: TickReport) -> list[tuple[str, str]]:
    return [(outcome.name, outcome.outcome.value) for outcome in report.outcomes]


# --- never early -------------------------------------------------------------------------------


async def test_a_slot_is_not_enqueued_a_microsecond_before_it_and_is_at_it(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("1 12 * * *", "report", name="report")
    ticker = ticker_of(store, clock, schedules, queue)
    slot = START + timedelta(minutes=1)

    clock.advance(timedelta(minutes=1) - timedelta(microseconds=1))
    early = await ticker.tick()
    clock.advance(timedelta(microseconds=1))
    on_time = await ticker.tick()

    assert outcomes(early) == []
    assert early.next_slot_ms == ms(slot)
    assert outcomes(on_time) == [("report", "enqueued")]
    assert on_time.outcomes[0].late_by == timedelta(0)
    assert recorder.pushed == [(f"periodic:report:{ms(slot)}", ms(slot) * 1000)]


async def test_a_six_field_schedule_is_never_early_inside_a_millisecond(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("*/1 * * * * *", "beat", name="beat")
    ticker = ticker_of(store, clock, schedules, queue)
    rng = random.Random(7)

    for _ in range(300):
        clock.advance(timedelta(microseconds=rng.randrange(1, 400_000)))
        await ticker.tick()

    assert recorder.pushed
    for job_id, pushed_us in recorder.pushed:
        slot_ms = int(job_id.rpartition(":")[2])
        assert pushed_us >= slot_ms * 1000
        assert pushed_us - slot_ms * 1000 < 1_000_000  # a tick reaches every one-second slot


async def test_the_pause_after_a_tick_wakes_the_ticker_at_the_next_slot(
    clock: FakeClock, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add(timedelta(milliseconds=250), "x", name="quick")
    schedules.add("@daily", "y", name="slow")
    ticker = ticker_of(store, clock, schedules, queue)
    clock.advance(timedelta(microseconds=100_400))

    report = await ticker.tick()

    assert report.pause(timedelta(seconds=1)) == timedelta(microseconds=149_600)
    assert report.pause(timedelta(milliseconds=10)) == timedelta(milliseconds=10)


# --- exactly once ------------------------------------------------------------------------------


async def test_tickers_sharing_a_store_enqueue_each_slot_exactly_once(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    recorder.interleave = True
    schedules = Schedules()
    schedules.add(timedelta(seconds=1), "beat", name="beat")
    schedules.add("*/5 * * * * *", "five", name="five")
    tickers = [ticker_of(store, clock, schedules, queue) for _ in range(4)]
    rng = random.Random(16)
    end = START + timedelta(minutes=2)

    while clock.now_us() < ms(end) * 1000:
        clock.advance(timedelta(microseconds=rng.randrange(1, 700_000)))
        reports = await asyncio.gather(*(ticker.tick() for ticker in rng.sample(tickers, 4)))
        assert sum(o.outcome is Outcome.ENQUEUED for r in reports for o in r.outcomes) <= 2

    beats = [ms(START) + 1000 * n for n in range(121)]
    fives = [ms(START) + 5000 * n for n in range(25)]
    expected = {f"periodic:beat:{s}" for s in beats} | {f"periodic:five:{s}" for s in fives}
    assert len(recorder.ids) == len(set(recorder.ids))
    assert set(recorder.ids) == expected


async def test_a_ticker_that_starts_later_takes_no_slot_another_already_enqueued(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("@hourly", "x", name="hourly")
    clock.advance(timedelta(hours=1))
    first = await ticker_of(store, clock, schedules, queue).tick()

    clock.advance(timedelta(seconds=1))
    late = ticker_of(store, clock, schedules, queue)
    second = await late.tick()

    assert outcomes(first) == [("hourly", "enqueued")]
    assert outcomes(second) == []  # it read the store's last slot at its first tick
    assert len(recorder.ids) == 1


async def test_a_ticker_told_the_slot_was_taken_reports_it(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("@hourly", "x", name="hourly")
    clock.advance(timedelta(minutes=1))
    early, late = (ticker_of(store, clock, schedules, queue) for _ in range(2))
    await early.tick()
    await late.tick()  # both have read the store before the slot
    clock.advance(timedelta(minutes=59))

    reports = [await early.tick(), await late.tick()]

    assert [outcomes(report) for report in reports] == [
        [("hourly", "enqueued")],
        [("hourly", "taken")],
    ]
    assert len(recorder.ids) == 1


# --- misfires ----------------------------------------------------------------------------------


async def test_skip_drops_the_slots_missed_while_no_worker_ran(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("*/10 * * * *", "x", name="ten")
    clock.advance(timedelta(minutes=10))
    await ticker_of(store, clock, schedules, queue).tick()

    clock.advance(timedelta(minutes=35))  # every worker down: 12:20, 12:30 and 12:40 pass
    restarted = ticker_of(store, clock, schedules, queue)
    after_gap = await restarted.tick()
    clock.advance(timedelta(minutes=5))
    next_slot = await restarted.tick()

    assert outcomes(after_gap) == [("ten", "skipped")]
    assert outcomes(next_slot) == [("ten", "enqueued")]
    assert recorder.ids == [
        f"periodic:ten:{ms(START + timedelta(minutes=10))}",
        f"periodic:ten:{ms(START + timedelta(minutes=50))}",
    ]


async def test_skip_runs_the_latest_slot_while_it_is_within_the_tolerance(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("*/10 * * * *", "x", name="ten")
    clock.advance(timedelta(minutes=10, seconds=2))  # two intervals: the default tolerance

    report = await ticker_of(store, clock, schedules, queue).tick()

    assert outcomes(report) == [("ten", "enqueued")]
    assert report.outcomes[0].late_by == timedelta(seconds=2)
    assert recorder.pushed == [
        (f"periodic:ten:{ms(START + timedelta(minutes=10))}", clock.now_us()),
    ]


async def test_skip_tolerance_is_a_setting(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("*/10 * * * *", "x", name="ten")
    clock.advance(timedelta(minutes=10, seconds=2))

    report = await ticker_of(store, clock, schedules, queue, tolerance=timedelta(seconds=1)).tick()

    assert outcomes(report) == []  # the store never saw the schedule: nothing was missed
    assert recorder.ids == []


async def test_once_runs_one_catch_up_job_for_the_slots_missed(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("*/10 * * * *", lambda slot: slot.isoformat(), name="ten", misfire="once")
    clock.advance(timedelta(minutes=10))
    await ticker_of(store, clock, schedules, queue).tick()

    clock.advance(timedelta(minutes=35))  # 12:20, 12:30 and 12:40 pass with no worker
    restarted = ticker_of(store, clock, schedules, queue)
    after_gap = await restarted.tick()
    again = await restarted.tick()

    catch_up = START + timedelta(minutes=40)
    assert outcomes(after_gap) == [("ten", "enqueued")]
    assert outcomes(again) == []
    assert recorder.ids[1:] == [f"periodic:ten:{ms(catch_up)}"]
    assert JsonCodec().decode(recorder.jobs[1].value) == catch_up.isoformat()


async def test_once_has_nothing_to_catch_up_for_a_schedule_the_store_never_saw(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add("*/10 * * * *", "x", name="ten", misfire="once")
    clock.advance(timedelta(minutes=35))
    ticker = ticker_of(store, clock, schedules, queue)

    new = await ticker.tick()
    clock.advance(timedelta(minutes=5))
    first_slot = await ticker.tick()

    assert outcomes(new) == []
    assert outcomes(first_slot) == [("ten", "enqueued")]
    assert recorder.ids == [f"periodic:ten:{ms(START + timedelta(minutes=40))}"]


# --- the job -----------------------------------------------------------------------------------


async def test_a_callable_job_is_given_the_slots_aware_datetime_in_the_schedules_zone(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    given: list[datetime] = []

    def make(slot: datetime) -> Any:
        given.append(slot)
        return adjust({"day": slot.date().isoformat()}, max_attempts=3)

    schedules = Schedules()
    schedules.add("0 16 * * *", make, name="afternoon", tz="Europe/Berlin")
    clock.advance(timedelta(hours=2))  # 14:00 UTC, 16:00 in Berlin (summer time)

    await ticker_of(store, clock, schedules, queue).tick()

    assert [slot.isoformat() for slot in given] == ["2024-06-01T16:00:00+02:00"]
    (job,) = recorder.jobs
    assert (job.id, job.type, job.max_attempts) == (
        f"periodic:afternoon:{ms(START + timedelta(hours=2))}",
        "builtins.dict",
        3,
    )
    assert JsonCodec().decode(job.value) == {"day": "2024-06-01"}


async def test_an_async_callable_job_is_awaited(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    async def make(slot: datetime) -> str:
        return f"at {slot:%H:%M}"

    schedules = Schedules()
    schedules.add(timedelta(minutes=1), make, name="minute")
    clock.advance(timedelta(minutes=1))

    await ticker_of(store, clock, schedules, queue).tick()

    assert JsonCodec().decode(recorder.jobs[0].value) == "at 12:01"


async def test_a_job_that_cannot_be_built_is_logged_and_the_other_schedules_still_run(
    clock: FakeClock,
    recorder: Recorder,
    store: MemorySlotStore,
    queue: Queue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(slot: datetime) -> Any:
        raise RuntimeError("no database")

    schedules = Schedules()
    schedules.add(timedelta(minutes=1), broken, name="broken")
    schedules.add(timedelta(minutes=1), object(), name="unencodable")
    schedules.add(timedelta(minutes=1), lambda slot: adjust("x", defer=timedelta(1)), name="late")
    schedules.add(timedelta(minutes=1), "fine", name="fine")
    ticker = ticker_of(store, clock, schedules, queue)
    clock.advance(timedelta(minutes=1))

    with caplog.at_level(logging.ERROR, logger="corequeue.periodic"):
        report = await ticker.tick()
        again = await ticker.tick()

    assert outcomes(report) == [
        ("broken", "failed"),
        ("unencodable", "failed"),
        ("late", "failed"),
        ("fine", "enqueued"),
    ]
    assert report.outcomes[0].error == "RuntimeError: no database"
    assert outcomes(again) == []  # logged once per slot, not at every tick
    assert len(caplog.records) == 3
    assert recorder.ids == [f"periodic:fine:{ms(START + timedelta(minutes=1))}"]


async def test_a_store_that_does_not_answer_leaves_the_slot_due_for_the_next_tick(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    schedules = Schedules()
    schedules.add(timedelta(minutes=1), "x", name="minute")
    ticker = ticker_of(store, clock, schedules, queue)
    clock.advance(timedelta(minutes=1))
    recorder.failures = 1

    down = await ticker.tick()
    up = await ticker.tick()

    assert outcomes(down) == [("minute", "failed")]
    assert outcomes(up) == [("minute", "enqueued")]
    assert await store.schedule_slots() == {"minute": ms(START + timedelta(minutes=1))}


async def test_a_value_job_is_not_changed_by_the_slot_ids_it_gets(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    template = PersistedJob(id="template", type="t", value=b"1")
    schedules = Schedules()
    schedules.add(timedelta(minutes=1), template, name="m")
    ticker = ticker_of(store, clock, schedules, queue)

    for _ in range(2):
        clock.advance(timedelta(minutes=1))
        await ticker.tick()

    assert template.id == "template"
    assert len(set(recorder.ids)) == 2


# --- the store's records -----------------------------------------------------------------------


async def test_a_starting_ticker_forgets_stale_schedules_no_one_declares_here(
    clock: FakeClock, store: MemorySlotStore, queue: Queue
) -> None:
    old = ms(START - timedelta(days=31))
    recent = ms(START - timedelta(days=29))
    job = PersistedJob(id="j", type="t", value=b"1")
    for name, slot in [("removed", old), ("elsewhere", recent), ("kept", old)]:
        await store.enqueue_slot(name, slot, job)
    schedules = Schedules()
    schedules.add("@yearly", "x", name="kept")

    await ticker_of(store, clock, schedules, queue).tick()

    assert await store.schedule_slots() == {"elsewhere": recent, "kept": old}


async def test_forgetting_can_be_turned_off(
    clock: FakeClock, store: MemorySlotStore, queue: Queue
) -> None:
    await store.enqueue_slot("removed", 0, PersistedJob(id="j", type="t", value=b"1"))

    await ticker_of(store, clock, Schedules(), queue, forget_after=None).tick()

    assert await store.schedule_slots() == {"removed": 0}


async def test_a_store_that_cannot_be_read_at_start_delays_every_slot_to_a_later_tick(
    clock: FakeClock, recorder: Recorder, queue: Queue
) -> None:
    class Flaky(MemorySlotStore):
        down = True

        async def schedule_slots(self) -> dict[str, int]:
            if self.down:
                raise StoreUnavailable("memory", "down")
            return await super().schedule_slots()

    store = Flaky(recorder)
    schedules = Schedules()
    schedules.add(timedelta(minutes=1), "x", name="minute")
    ticker = ticker_of(store, clock, schedules, queue)
    clock.advance(timedelta(minutes=1))

    down = await ticker.tick()
    store.down = False
    up = await ticker.tick()

    assert (outcomes(down), down.next_slot_ms) == ([], None)
    assert outcomes(up) == [("minute", "enqueued")]


def test_ticker_settings_are_checked() -> None:
    assert TickerSettings().misfire_tolerance == timedelta(seconds=2)
    assert TickerSettings(interval=timedelta(milliseconds=100)).misfire_tolerance == timedelta(
        milliseconds=200
    )
    for bad in [
        {"interval": timedelta(0)},
        {"tolerance": timedelta(seconds=-1)},
        {"forget_after": timedelta(seconds=1)},
    ]:
        with pytest.raises(ValueError, match="must"):
            TickerSettings(**bad)


# --- the memory store and the loop -------------------------------------------------------------


async def test_the_memory_store_undoes_an_advance_whose_push_failed(
    recorder: Recorder, store: MemorySlotStore
) -> None:
    job = PersistedJob(id="j", type="t", value=b"1")
    await store.enqueue_slot("a", 1_000, job)
    recorder.failures = 2

    for name, slot in [("a", 2_000), ("b", 2_000)]:
        with pytest.raises(StoreUnavailable):
            await store.enqueue_slot(name, slot, job)

    assert await store.schedule_slots() == {"a": 1_000}
    assert await store.enqueue_slot("a", 2_000, job)
    assert not await store.enqueue_slot("a", 1_500, job)
    assert await store.forget_schedule("a")
    assert not await store.forget_schedule("a")


async def test_run_ticks_until_stopped(
    clock: FakeClock, recorder: Recorder, store: MemorySlotStore, queue: Queue
) -> None:
    pushed = asyncio.Event()
    push = recorder.push

    async def push_and_tell(job: PersistedJob, delay: timedelta) -> None:
        await push(job, delay)
        pushed.set()

    recorder.push = push_and_tell  # type: ignore[method-assign]
    schedules = Schedules()
    schedules.add(timedelta(minutes=1), "x", name="minute")
    ticker = ticker_of(store, clock, schedules, queue, interval=timedelta(milliseconds=1))
    stop = asyncio.Event()

    async with asyncio.TaskGroup() as group:
        running = group.create_task(ticker.run(stop))
        clock.advance(timedelta(minutes=1))
        await pushed.wait()
        stop.set()

    assert running.done()
    assert recorder.ids == [f"periodic:minute:{ms(START + timedelta(minutes=1))}"]


async def test_a_slot_the_store_refuses_as_early_runs_when_its_clock_reaches_it(
    queue: Queue,
) -> None:
    """A worker whose clock runs ahead of the store's never loses the slot to misfire=skip."""
    store_clock = FakeClock(START - timedelta(seconds=3))  # the store runs 3 s behind
    worker_clock = FakeClock(START)
    recorder = Recorder(store_clock)
    store = MemorySlotStore(recorder, clock=store_clock)
    schedules = Schedules()
    schedules.add(timedelta(minutes=1), "x", name="minute")
    ticker = ticker_of(store, worker_clock, schedules, queue)

    reports = []
    for _ in range(5):  # one tick a second; the tolerance (2 s) passes on the worker's clock
        reports.append(await ticker.tick())
        store_clock.advance(timedelta(seconds=1))
        worker_clock.advance(timedelta(seconds=1))

    assert [outcomes(report) for report in reports[:3]] == [[("minute", "early")]] * 3
    assert outcomes(reports[3]) == [("minute", "enqueued")]
    assert recorder.ids == [f"periodic:minute:{ms(START)}"]
    assert recorder.pushed[0][1] >= ms(START) * 1_000  # never before the slot on the store's clock
