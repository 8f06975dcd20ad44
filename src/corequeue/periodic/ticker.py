"""The ticker: enqueue each due slot of a queue's schedules through the store, never early.

Every worker of a queue may run a ticker over the same schedules. Each tick reads the store's
clock, takes for every schedule the latest slot at or before now, and asks the store to
enqueue it (`SlotStore.enqueue_slot`): the store advances the schedule's last slot and pushes
the job in one atomic step, so whichever worker comes first enqueues it and the others are
told it was taken. A slot is never considered before the clock reaches it, to the microsecond.

Misfires (slots that passed while no worker ticked):

- `skip`: only the latest slot is considered, and only while it is at most `tolerance` old
  (two tick intervals by default: a running worker reaches every slot within one). Older
  slots are dropped, so a worker starting after an outage runs nothing until the next slot.
- `once`: when the store has a last slot for the schedule and later slots passed, one job is
  enqueued for all of them, with the latest one's id and datetime.

A schedule the store has never seen (new, or forgotten) has missed nothing: its first slot is
the latest one if that is within the tolerance, else the next one, whatever its policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

from corequeue.drivers.base import Clock
from corequeue.errors import InvalidOption
from corequeue.guard import Guard
from corequeue.job import PersistedJob
from corequeue.metrics import SlotMetrics
from corequeue.periodic.registry import PeriodicJob, Schedules, check_job
from corequeue.periodic.schedule import slot_datetime
from corequeue.periodic.store import SlotStore

DEFAULT_TICK_INTERVAL: Final = timedelta(seconds=1)
"""How often a ticker looks at its schedules when no slot falls sooner."""

DEFAULT_FORGET_AFTER: Final = timedelta(days=30)
"""How old the last slot of a schedule no worker declares is before a starting ticker forgets it."""

Persist = Callable[[Any], tuple[PersistedJob, timedelta]]
"""Builds the envelope of a job and its delay (`Queue.persist`)."""


class Outcome(StrEnum):
    """What a tick did with a due slot."""

    ENQUEUED = "enqueued"
    """This ticker advanced the schedule and pushed the slot's job."""
    TAKEN = "taken"
    """The store already had this slot (or a later one): another worker enqueued it."""
    SKIPPED = "skipped"
    """misfire="skip": the slot passed more than the tolerance ago, unseen; it is dropped."""
    FAILED = "failed"
    """The job could not be built (logged, not retried), or the store did not answer."""
    EARLY = "early"
    """The store's clock had not reached the slot yet (it runs behind this worker's): the
    store refused it, and the next tick asks again."""


@dataclass(frozen=True, slots=True)
class SlotOutcome:
    """What one tick did with one schedule's due slot.

    Attributes:
        name: The schedule.
        slot_ms: The slot, in milliseconds since the Unix epoch.
        outcome: What happened to it.
        late_by: How long after the slot the tick ran (never negative: never early).
        error: For FAILED, the exception's type and message.
    """

    name: str
    slot_ms: int
    outcome: Outcome
    late_by: timedelta = timedelta(0)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TickReport:
    """The result of one tick: what happened to due slots, and when the next slot falls.

    Example:
        >>> report = TickReport(now_us=1_000_000, outcomes=(), next_slot_ms=1_250)
        >>> report.pause(timedelta(seconds=1))
        datetime.timedelta(microseconds=250000)
    """

    now_us: int
    outcomes: tuple[SlotOutcome, ...]
    next_slot_ms: int | None

    def pause(self, interval: timedelta) -> timedelta:
        """Return how long to wait before the next tick: `interval`, or less to meet a slot."""
        if self.next_slot_ms is None:
            return interval
        until_us = max(self.next_slot_ms * 1_000 - self.now_us, 0)
        return min(interval, timedelta(microseconds=until_us))


@dataclass(frozen=True, slots=True)
class TickerSettings:
    """How a ticker paces itself and handles misfires.

    Attributes:
        interval: The longest wait between ticks (a ticker also wakes at the next slot).
        tolerance: How old the latest slot may be and still run under misfire="skip"
            (default: two intervals).
        forget_after: A starting ticker forgets the stored slot of a schedule it does not
            declare once that slot is older than this (None: never). Safe for any schedule
            another worker still declares: a forgotten slot older than `tolerance` is never
            enqueued again; only a pending `once` catch-up of that schedule is lost.
    """

    interval: timedelta = DEFAULT_TICK_INTERVAL
    tolerance: timedelta | None = None
    forget_after: timedelta | None = DEFAULT_FORGET_AFTER

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0):
            raise InvalidOption(f"interval must be a positive timedelta, got {self.interval!r}")
        if self.misfire_tolerance < timedelta(0):
            raise InvalidOption(f"tolerance must not be negative, got {self.tolerance!r}")
        if self.forget_after is not None and self.forget_after <= self.misfire_tolerance:
            raise InvalidOption("forget_after must be longer than the misfire tolerance")

    @property
    def misfire_tolerance(self) -> timedelta:
        """The tolerance, with its default applied."""
        return 2 * self.interval if self.tolerance is None else self.tolerance


class Ticker:
    """Enqueues the due slots of one queue's schedules, as one of any number of workers.

    Args:
        store: Where slots advance and their jobs are pushed (the queue's driver).
        clock: The store's clock.
        schedules: The queue's schedules.
        persist: Builds a job's envelope (`Queue.persist`).
        settings: Pacing and misfire tolerance.
        log: Where failures are logged (default: the "corequeue.periodic" logger).
        metrics: Receives each due slot's outcome (`SlotMetrics.observe_slot`); what it
            raises is logged and the ticker carries on.
        queue: The queue's name, for the metrics and the log.

    Example:
        >>> from datetime import UTC, datetime
        >>> from corequeue.drivers.in_process import InProcessDriver
        >>> from corequeue.periodic.store import MemorySlotStore
        >>> from corequeue.testing import FakeClock
        >>> clock = FakeClock(datetime(2024, 1, 1, 7, 0, tzinfo=UTC))
        >>> schedules = Schedules()
        >>> _ = schedules.add("0 7 * * *", "wake up", name="alarm")
        >>> def persist(job: Any) -> tuple[PersistedJob, timedelta]:
        ...     return PersistedJob(id="", type="alarm", value=b'"wake up"'), timedelta(0)
        >>> store = MemorySlotStore(InProcessDriver(clock=clock))
        >>> report = asyncio.run(Ticker(store, clock, schedules, persist).tick())
        >>> [(outcome.name, outcome.slot_ms, outcome.outcome.value) for outcome in report.outcomes]
        [('alarm', 1704092400000, 'enqueued')]
    """

    def __init__(
        self,
        store: SlotStore,
        clock: Clock,
        schedules: Schedules,
        persist: Persist,
        *,
        settings: TickerSettings | None = None,
        log: logging.Logger | None = None,
        metrics: SlotMetrics | None = None,
        queue: str = "default",
    ) -> None:
        self._store = store
        self._clock = clock
        self._schedules = schedules
        self._persist = persist
        self.settings = settings or TickerSettings()
        self._log = log or logging.getLogger("corequeue.periodic")
        self._metrics = metrics
        self._queue = queue
        self._metrics_guard = Guard(self._log, f"queue {queue}: periodic metrics observer")
        self._known: dict[str, int] = {}  # name -> latest slot settled (by anyone) as far as known
        self._early: dict[str, int] = {}  # name -> slot the store refused: its clock is behind
        self._loaded = False

    async def tick(self) -> TickReport:
        """Enqueue the due slot of every schedule that has one; report what happened.

        The first tick reads the store's last slots (and forgets stale undeclared ones).
        Nothing raises for one schedule's sake: a job that cannot be built is logged at
        ERROR, a store that does not answer at WARNING (that slot is tried again next tick).
        """
        now_us = self._clock.now_us()
        if not self._loaded and not await self._load(now_us // 1_000):
            return TickReport(now_us, (), None)
        outcomes: list[SlotOutcome] = []
        for entry in self._schedules:
            outcome = await self._tick_one(entry, now_us)
            if outcome is not None:
                outcomes.append(outcome)
                self._observe(outcome)
        return TickReport(now_us, tuple(outcomes), self._next_slot_ms(now_us // 1_000))

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set, waking at each slot and at least every `interval`."""
        while not stop.is_set():
            report = await self.tick()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(report.pause(self.settings.interval).total_seconds()):
                    await stop.wait()

    def _observe(self, outcome: SlotOutcome) -> None:
        """Report one outcome to the metrics, if any; what they raise is logged, not raised."""
        if self._metrics is not None:
            self._metrics_guard.call(
                self._metrics.observe_slot,
                self._queue,
                outcome.name,
                outcome.outcome.value,
                outcome.late_by.total_seconds(),
            )

    async def _load(self, now_ms: int) -> bool:
        """Learn the store's last slots; forget stale ones of undeclared schedules."""
        try:
            slots = await self._store.schedule_slots()
            await self._forget_stale(slots, now_ms)
        except Exception as exc:  # the store, or its client: try again at the next tick
            self._log.warning("periodic: cannot read the schedules' last slots: %s", exc)
            return False
        for name, slot_ms in slots.items():
            if name in self._schedules:
                self._known[name] = max(slot_ms, self._known.get(name, slot_ms))
        self._loaded = True
        return True

    async def _forget_stale(self, slots: dict[str, int], now_ms: int) -> None:
        forget_after = self.settings.forget_after
        if forget_after is None:
            return
        oldest_kept = now_ms - forget_after // timedelta(milliseconds=1)
        for name, slot_ms in slots.items():
            if name not in self._schedules and slot_ms < oldest_kept:
                await self._store.forget_schedule(name)
                self._log.info(
                    "periodic: forgot schedule %r, which this worker does not declare", name
                )

    async def _tick_one(self, entry: PeriodicJob, now_us: int) -> SlotOutcome | None:
        """Enqueue `entry`'s latest due slot if it is new and allowed by its misfire policy."""
        latest = entry.schedule.latest_at_or_before(now_us // 1_000)
        known = self._known.get(entry.name)
        if latest is None or (known is not None and latest <= known):
            return None
        catch_up = entry.misfire == "once" and known is not None
        late_by = timedelta(microseconds=now_us - latest * 1_000)
        # A slot the store refused as early is not a misfire, however late this worker's clock
        # (ahead of the store's) says it is: only the store's clock decides.
        refused_early = self._early.get(entry.name) == latest
        if not catch_up and not refused_early and late_by > self.settings.misfire_tolerance:
            self._known[entry.name] = latest
            # A schedule the store never saw missed nothing: its slots before now predate it.
            skipped = SlotOutcome(entry.name, latest, Outcome.SKIPPED, late_by)
            return None if known is None else skipped
        try:
            job = await self._build(entry, latest)
        except Exception as exc:  # user code: the callable, the codec, a payload's validation
            self._known[entry.name] = latest
            self._log.exception("periodic: cannot build the job of %s", entry.job_id(latest))
            return SlotOutcome(entry.name, latest, Outcome.FAILED, late_by, _error(exc))
        return await self._enqueue(entry, latest, job, late_by)

    async def _enqueue(
        self, entry: PeriodicJob, slot_ms: int, job: PersistedJob, late_by: timedelta
    ) -> SlotOutcome:
        try:
            enqueued = await self._store.enqueue_slot(entry.name, slot_ms, job)
            if not enqueued and not await self._taken(entry.name, slot_ms):
                self._early[entry.name] = slot_ms
                return SlotOutcome(entry.name, slot_ms, Outcome.EARLY, late_by)
        except Exception as exc:  # the store, or its client: the slot stays due for the next tick
            self._log.warning("periodic: cannot enqueue %s: %s", job.id, exc)
            return SlotOutcome(entry.name, slot_ms, Outcome.FAILED, late_by, _error(exc))
        self._early.pop(entry.name, None)
        self._known[entry.name] = slot_ms
        outcome = Outcome.ENQUEUED if enqueued else Outcome.TAKEN
        return SlotOutcome(entry.name, slot_ms, outcome, late_by)

    async def _taken(self, name: str, slot_ms: int) -> bool:
        """Whether the store has this slot (or a later one): a refusal was not for earliness.

        The store refuses a slot its own clock has not reached (never early, whatever this
        worker's clock says); only the losers of a slot pay this extra read.
        """
        return (await self._store.schedule_slots()).get(name, slot_ms - 1) >= slot_ms

    async def _build(self, entry: PeriodicJob, slot_ms: int) -> PersistedJob:
        """The envelope of the slot's job, with the slot's id."""
        value = entry.job
        if entry.is_factory:
            value = entry.job(slot_datetime(slot_ms, entry.schedule.zone))
            if inspect.isawaitable(value):
                value = await value
            check_job(value)
        persisted, delay = self._persist(value)
        if delay > timedelta(0):
            raise InvalidOption(f"the job of {entry.job_id(slot_ms)} is deferred by {delay}")
        return replace(persisted, id=entry.job_id(slot_ms))

    def _next_slot_ms(self, now_ms: int) -> int | None:
        upcoming = [entry.schedule.next_after(now_ms) for entry in self._schedules]
        return min((slot for slot in upcoming if slot is not None), default=None)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
