"""Every driver against a small reference model, over random operation sequences (hypothesis).

A RuleBasedStateMachine pushes jobs (new ids, and the ids of a small pool dispatched again),
pops them for three named holders (so holders go stale), settles what they hold (ack, retry
with backoff, fail, renew, release, and the batch forms), lets leases run out, cancels and
reloads, and prunes kept results. After every step the driver must agree with a plain-Python
model: the counts of `info()`, where `get_job` finds each job and what it holds, which job a
pop may hand out, and what every settle returns (and every cancel request a renewal reports).

The model's one freedom: a lease that ran out is recovered at the next pop. Until then a
driver may show the job recovered or still reserved, and may honour or refuse its holder's
token; the model accepts either and follows what the driver answered.

On the code before fencing (settles returned None, so a copy of this machine checked channels
only, and only acks came from stale holders), these settings found a late ack deleting a newer
reservation after 5 examples (268 steps) on InProcess, 6 (370) on SQLite and 29 (1497) on
Redis; over 40 random seeds on InProcess it took a median of 7 examples, 26 at the 90th
percentile and 85 at most. Shrunk, it reads: push, pop by B, leases run out, pop by A, B acks.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from corequeue.drivers.base import (
    LEASE_EXPIRED,
    Channel,
    Driver,
    InspectDriver,
    QueueInfo,
    instant_of_ms,
)
from corequeue.errors import QueueEmpty
from corequeue.job import PersistedJob, to_ms
from corequeue.testing import FakeClock
from corequeue.testing.jobs import persisted
from tests.support.drivers import all_factories

FACTORIES = all_factories(pop_timeout=timedelta(0))
"""Drivers whose pop looks once and gives up, so an empty pop costs nothing. The clock moves
only when a rule says: a job due when a pop starts (one whose lease just ran out included) must
come out of that one look."""

# 40 examples of up to 80 steps: long runs find more interleavings per step than short ones,
# and 40 examples covered every late-ack find above but the slowest tenth, within about a minute
# for all drivers together.
SETTINGS = settings(
    max_examples=40,
    stateful_step_count=80,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    database=None,
    report_multiple_bugs=False,  # shrinking one failure on a server store takes minutes already
)

HOLDERS = ["A", "B", "C"]
POOL = ["report-42", "j1", "j2"]
"""Ids dispatched again and again: a job pushed after the last one of that id finished."""

KEEPS_RESULT = "report-42"
"""The id whose jobs keep their result: an ack moves them to `completed` for KEEP."""

KEEP = timedelta(seconds=5)

NEW = "new"
"""Stands for an id never used before."""

HELD_PER_HOLDER = 3
"""Copies each holder keeps; older ones are dropped (they can only be staler)."""

SETTLES = ["ack", "retry", "fail", "renew", "release"]
DELAYS = [timedelta(0), timedelta(seconds=1), timedelta(seconds=5)]
STEPS = [timedelta(milliseconds=1), timedelta(seconds=1), timedelta(seconds=5)]
CHOICES = st.sampled_from([NEW, *POOL])
PICK = st.integers(min_value=0, max_value=HELD_PER_HOLDER - 1)
PRIORITIES = st.sampled_from([0, 0, 5, -5])

T = TypeVar("T")

FINISHED = (Channel.FAILED, Channel.TIMEOUT, Channel.COMPLETED)
"""Where a job ends; a push of its id replaces it."""


# --- the reference model ------------------------------------------------------------------


class Status(Enum):
    """Where a holder's copy stands."""

    LIVE = "reserved under its token, lease running"
    LAPSED = "reserved under its token, lease ran out, not recovered yet"
    STALE = "anything else"


@dataclass
class Stored:
    """One job as a correct driver keeps it."""

    job: PersistedJob
    channel: Channel
    """WAITING for every pending job (it counts as delayed until `at_ms`), RESERVED, FAILED
    or TIMEOUT."""
    at_ms: int = 0
    """Pending: when it falls due; reserved: when its lease runs out."""
    reservation: int | None = None
    cancel_for: int | None = None
    """The reservation a `cancel()` asked to stop (its holder's renewals report it)."""


@dataclass(frozen=True)
class Held:
    """A copy a pop handed to a holder, with the model's number of that reservation."""

    holder: str
    job: PersistedJob
    reservation: int


class Reference:
    """What a correct driver holds, in plain Python."""

    def __init__(self, lease_ms: int) -> None:
        self.lease_ms = lease_ms
        self.jobs: dict[str, Stored] = {}
        self._reservations = itertools.count(1)

    def push(self, job: PersistedJob, delay_ms: int, now: int) -> None:
        stored = self.jobs.get(job.id)
        if stored is None or stored.channel in FINISHED:
            self.jobs[job.id] = Stored(replace(job, token=None), Channel.WAITING, now + delay_ms)

    def lapsed(self, now: int) -> list[Stored]:
        return [s for s in self.jobs.values() if s.channel is Channel.RESERVED and s.at_ms <= now]

    def recover(self, now: int) -> None:
        for stored in self.lapsed(now):
            self.jobs[stored.job.id] = self.recovered(stored, now)

    @staticmethod
    def recovered(stored: Stored, now: int) -> Stored:
        """Return `stored` after its lapsed lease is recovered: one attempt more, or timeout."""
        job = replace(stored.job, last_error=LEASE_EXPIRED)
        if job.attempts < job.max_attempts:
            job.attempts += 1
            return Stored(job, Channel.WAITING, now)
        return Stored(job, Channel.TIMEOUT)

    def due(self, now: int) -> set[str]:
        return {i for i, s in self.jobs.items() if s.channel is Channel.WAITING and s.at_ms <= now}

    def reserve(self, job_id: str, now: int) -> int:
        reservation = next(self._reservations)
        stored = self.jobs[job_id]
        stored.channel, stored.at_ms = Channel.RESERVED, now + self.lease_ms
        stored.reservation = reservation
        return reservation

    def status(self, held: Held, now: int) -> Status:
        stored = self.jobs.get(held.job.id)
        if stored is None or stored.channel is not Channel.RESERVED:
            return Status.STALE
        if stored.reservation != held.reservation:
            return Status.STALE
        return Status.LIVE if stored.at_ms > now else Status.LAPSED

    def settle(self, how: str, job: PersistedJob, now: int) -> None:
        """Apply a settle the driver accepted; `job` is the copy as the worker sent it."""
        stored = self.jobs[job.id]
        clean = replace(job, token=None)
        if how == "ack" and job.keep_result:
            self.jobs[job.id] = Stored(clean, Channel.COMPLETED, now + to_ms(job.keep_result))
        elif how == "ack":
            del self.jobs[job.id]
        elif how == "fail":
            self.jobs[job.id] = Stored(clean, Channel.FAILED)
        elif how == "retry":
            self.jobs[job.id] = Stored(clean, Channel.WAITING, now + to_ms(job.backoff))
        elif how == "release":
            self.jobs[job.id] = Stored(stored.job, Channel.WAITING, now)
        else:  # renew
            stored.at_ms = now + self.lease_ms

    def cancel(self, job_id: str) -> bool:
        stored = self.jobs.get(job_id)
        if stored is not None and stored.channel is Channel.RESERVED:
            stored.cancel_for = stored.reservation  # a request for the holder, not a removal
            return True
        if stored is None or stored.channel is not Channel.WAITING:
            return False
        del self.jobs[job_id]
        return True

    def cancel_requested(self, held: Held) -> bool:
        stored = self.jobs.get(held.job.id)
        return stored is not None and stored.cancel_for == held.reservation

    def prune(self, now: int) -> int:
        """Delete the completed jobs whose result expired (no failed retention)."""
        expired = [i for i, s in self.jobs.items() if s.channel is Channel.COMPLETED]
        expired = [i for i in expired if self.jobs[i].at_ms <= now]
        for job_id in expired:
            del self.jobs[job_id]
        return len(expired)

    def reload(self, channel: Channel, now: int) -> int:
        parked = [s for s in self.jobs.values() if s.channel is channel]
        for stored in parked:
            stored.channel, stored.at_ms = Channel.WAITING, now
        return len(parked)

    def admits(self, info: QueueInfo, now: int) -> bool:
        """Whether `info` is what the driver may report, each lapsed lease recovered or not."""
        counts = dict.fromkeys(Channel, 0)
        for stored in self.jobs.values():
            counts[visible_channel(stored, now)] += 1
        lapsed = [self.recovered(s, now).channel for s in self.lapsed(now)]
        shown_waiting = info.waiting - counts[Channel.WAITING]
        shown_timeout = info.timeout - counts[Channel.TIMEOUT]
        return (
            0 <= shown_waiting <= lapsed.count(Channel.WAITING)
            and 0 <= shown_timeout <= lapsed.count(Channel.TIMEOUT)
            and info.reserved == counts[Channel.RESERVED] - shown_waiting - shown_timeout
            and (info.delayed, info.failed) == (counts[Channel.DELAYED], counts[Channel.FAILED])
            and info.completed == counts[Channel.COMPLETED]
        )


def visible_channel(stored: Stored, now: int) -> Channel:
    """The channel inspection shows: a pending job is delayed until it falls due."""
    if stored.channel is Channel.WAITING and stored.at_ms > now:
        return Channel.DELAYED
    return stored.channel


# --- the machine --------------------------------------------------------------------------


class DriverAgainstModel(RuleBasedStateMachine):
    """One driver, fresh for every example, driven in lockstep with a Reference."""

    driver_name: ClassVar[str]
    scratch: ClassVar[Path]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.stack = AsyncExitStack()
        folder = Path(tempfile.mkdtemp(dir=self.scratch))
        self.driver: Driver = self.run(
            self.stack.enter_async_context(FACTORIES[self.driver_name](self.clock, folder))
        )
        self.model = Reference(to_ms(self.driver.lease))
        self.held: dict[str, list[Held]] = {holder: [] for holder in HOLDERS}
        self.tokens: set[str] = set()
        self.ids = itertools.count(1)
        self.paused = False

    def teardown(self) -> None:
        try:
            self.run(self.stack.aclose())
        finally:
            self.loop.close()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(call)

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    # --- pushing and popping --------------------------------------------------------------

    def job_for(self, choice: str, max_attempts: int, priority: int = 0) -> PersistedJob:
        job_id = f"n{next(self.ids)}" if choice == NEW else choice
        version = next(self.ids)
        value = f'{{"id":"{job_id}","v":{version}}}'.encode()  # a new version each time
        # Headers on every other version: the envelope comparisons check them through every move.
        headers = {"version": str(version)} if version % 2 else {}
        keep = KEEP if job_id == KEEPS_RESULT else None
        return persisted(
            job_id,
            value=value,
            max_attempts=max_attempts,
            headers=headers,
            priority=priority,
            keep_result=keep,
        )

    @initialize(choices=st.lists(CHOICES, max_size=3, unique=True))
    def start_with(self, choices: list[str]) -> None:
        for choice in choices:
            self.push(choice, timedelta(0), 2)

    @rule(
        choice=CHOICES,
        delay=st.sampled_from(DELAYS),
        max_attempts=st.integers(1, 3),
        priority=PRIORITIES,
    )
    def push(self, choice: str, delay: timedelta, max_attempts: int, priority: int = 0) -> None:
        job = self.job_for(choice, max_attempts, priority)
        self.run(self.driver.push(job, delay))
        self.model.push(job, to_ms(delay), self.now)

    @rule(choices=st.lists(CHOICES, min_size=1, max_size=3, unique=True))
    def push_many(self, choices: list[str]) -> None:
        jobs = [(self.job_for(choice, 2), DELAYS[n % 2]) for n, choice in enumerate(choices)]
        self.run(self.driver.push_many(jobs))
        for job, delay in jobs:
            self.model.push(job, to_ms(delay), self.now)

    @rule(holder=st.sampled_from(HOLDERS))
    def pop(self, holder: str) -> None:
        recovered = {stored.job.id for stored in self.model.lapsed(self.now)}
        self.model.recover(self.now)
        due = self.model.due(self.now)
        try:
            job = self.run(self.driver.pop())
        except QueueEmpty:
            assert self.paused or not due, f"pop found nothing, yet {sorted(due)} are due"
            return
        assert not self.paused, "a paused queue handed out a job"
        self.check_priority_order([job], due - recovered)
        self.tokens.add(self.take(holder, job, due))

    @rule(holder=st.sampled_from(HOLDERS), limit=st.integers(1, 3))
    def pop_many(self, holder: str, limit: int) -> None:
        recovered = {stored.job.id for stored in self.model.lapsed(self.now)}
        self.model.recover(self.now)
        due = self.model.due(self.now)
        try:
            jobs = self.run(self.driver.pop_many(limit))
        except QueueEmpty:
            assert self.paused or not due, f"pop_many found nothing, yet {sorted(due)} are due"
            return
        assert not self.paused, "a paused queue handed out jobs"
        assert 1 <= len(jobs) <= min(limit, len(due))
        self.check_priority_order(jobs, due - recovered)
        assert len({job.id for job in jobs}) == len(jobs), "pop_many handed out a job twice"
        # The jobs of one batch may share a token; each pop call needs a fresh one.
        self.tokens.update([self.take(holder, job, due) for job in jobs])

    def check_priority_order(self, jobs: list[PersistedJob], due: set[str]) -> None:
        """A pop takes the highest priorities among due jobs: none left behind is higher.

        `due` leaves out the jobs this very pop recovers from lapsed leases: PostgreSQL's pop
        statement sees one snapshot, so the next pop takes them (the model's one freedom).
        """
        lowest_taken = min(job.priority for job in jobs)
        taken = {job.id for job in jobs}
        left_behind = [self.model.jobs[i].job.priority for i in due - taken]
        assert all(priority <= lowest_taken for priority in left_behind), (
            f"popped priority {lowest_taken} while {left_behind} waited"
        )

    @rule(paused=st.booleans())
    def pause_or_resume(self, paused: bool) -> None:
        self.run(self.driver.pause() if paused else self.driver.resume())
        self.paused = paused
        assert self.run(self.driver.is_paused()) is paused

    def take(self, holder: str, job: PersistedJob, due: set[str]) -> str:
        """Check a popped job against the model and hand it to `holder`; return its token."""
        assert job.id in due, f"popped {job.id}, but only {sorted(due)} are due"
        assert job == self.model.jobs[job.id].job, "popped envelope differs from the stored one"
        assert job.token is not None
        assert job.token not in self.tokens, "a pop handed out a token used before"
        copies = self.held[holder]
        copies.append(Held(holder, job, self.model.reserve(job.id, self.now)))
        del copies[:-HELD_PER_HOLDER]
        return job.token

    # --- settling -------------------------------------------------------------------------

    def holds_any(self) -> bool:
        return any(self.held.values())

    def copies_of(self, holder: str) -> list[Held]:
        """Return `holder`'s copies (the next holder's if it holds none), in flight first.

        Copies of jobs someone holds now come first, newest first, then the rest: hypothesis
        favours small picks, so settles go mostly where a stale token can do harm.
        """
        at = HOLDERS.index(holder)
        for name in HOLDERS[at:] + HOLDERS[:at]:
            if self.held[name]:
                newest_first = self.held[name][::-1]
                return sorted(newest_first, key=lambda held: not self.in_flight(held.job.id))
        raise AssertionError("nobody holds anything")  # the rules' precondition

    def in_flight(self, job_id: str) -> bool:
        stored = self.model.jobs.get(job_id)
        return stored is not None and stored.channel is Channel.RESERVED

    def pick(self, holder: str, number: int) -> Held:
        """Return one of `holder`'s copies (hypothesis favours small numbers: the newest)."""
        copies = self.copies_of(holder)
        return copies[number % len(copies)]

    @precondition(holds_any)
    @rule(holder=st.sampled_from(HOLDERS), pick=PICK)
    def ack(self, holder: str, pick: int) -> None:
        held = self.pick(holder, pick)
        self.check_settle(held, "ack", held.job)

    @precondition(holds_any)
    @rule(holder=st.sampled_from(HOLDERS), pick=PICK, backoff=st.sampled_from(DELAYS))
    def retry(self, holder: str, pick: int, backoff: timedelta) -> None:
        held = self.pick(holder, pick)
        job = replace(held.job, attempts=held.job.attempts + 1, backoff=backoff, last_error="x")
        self.check_settle(held, "retry", job)

    @precondition(holds_any)
    @rule(holder=st.sampled_from(HOLDERS), pick=PICK)
    def fail(self, holder: str, pick: int) -> None:
        held = self.pick(holder, pick)
        self.check_settle(held, "fail", replace(held.job, last_error="failed"))

    @precondition(holds_any)
    @rule(holder=st.sampled_from(HOLDERS), pick=PICK)
    def renew(self, holder: str, pick: int) -> None:
        held = self.pick(holder, pick)
        self.check_settle(held, "renew", held.job)

    @precondition(holds_any)
    @rule(holder=st.sampled_from(HOLDERS), pick=PICK)
    def release(self, holder: str, pick: int) -> None:
        held = self.pick(holder, pick)
        self.check_settle(held, "release", held.job)

    def check_settle(self, held: Held, how: str, job: PersistedJob) -> None:
        status = self.model.status(held, self.now)
        took = self.run(call(self.driver, how, job))
        if status is not Status.LAPSED:
            assert took is (status is Status.LIVE), f"{how} by {held.holder}: {status.value}"
        if took:
            self.model.settle(how, job, self.now)

    @precondition(holds_any)
    @rule(holder=st.sampled_from(HOLDERS), how=st.sampled_from(["ack", "renew"]))
    def settle_many(self, holder: str, how: str) -> None:
        """`holder` acks or renews every copy it holds in one call."""
        batch = self.copies_of(holder)
        status = [self.model.status(held, self.now) for held in batch]
        jobs = [held.job for held in batch]
        many = self.driver.ack_many(jobs) if how == "ack" else self.driver.renew_many(jobs)
        refused = {(job.id, job.token) for job in self.run(many)}
        for held, was in zip(batch, status, strict=True):
            took = (held.job.id, held.job.token) not in refused
            if was is not Status.LAPSED:
                assert took is (was is Status.LIVE), f"{how}_many by {held.holder}: {was.value}"
            if took and how == "renew":
                wanted = self.model.cancel_requested(held)
                assert held.job.cancel_requested is wanted, f"cancel request of {held.job.id}"
            if took:
                self.model.settle(how, held.job, self.now)

    @rule(choice=st.sampled_from(POOL), how=st.sampled_from(SETTLES))
    def settle_without_token(self, choice: str, how: str) -> None:
        stored = self.model.jobs.get(choice)
        job = persisted(choice) if stored is None else replace(stored.job, token=None)
        assert self.run(call(self.driver, how, job)) is False, f"{how} without a token took"

    # --- time and operators ---------------------------------------------------------------

    @rule(by=st.sampled_from(STEPS))
    def advance(self, by: timedelta) -> None:
        self.clock.advance(by)

    @rule()
    def let_leases_run_out(self) -> None:
        self.clock.advance(self.driver.lease)

    @rule(holder=st.sampled_from(HOLDERS))
    def holder_hangs(self, holder: str) -> None:
        """The other holders renew halfway through a lease; `holder`'s leases run out."""
        self.clock.advance(self.driver.lease / 2)
        others = [held for name in HOLDERS if name != holder for held in self.held[name]]
        for held in others:
            if self.model.status(held, self.now) is Status.LIVE:
                self.check_settle(held, "renew", held.job)
        self.clock.advance(self.driver.lease / 2)

    @rule(
        action=st.sampled_from(["cancel", "reload failed", "reload timeout", "prune"]),
        choice=st.sampled_from([*POOL, "n1", "n2", "n3"]),
    )
    def operator(self, action: str, choice: str) -> None:
        """Cancel job `choice`, or reload a channel."""
        if action == "cancel":
            assert self.run(self.driver.cancel(choice)) is self.model.cancel(choice)
        elif action == "prune":
            assert self.run(self.driver.prune(None, 100)) == self.model.prune(self.now)
        else:
            channel = Channel(action.removeprefix("reload "))
            assert self.run(self.driver.reload(channel)) == self.model.reload(channel, self.now)

    # --- what must hold after every step --------------------------------------------------

    @invariant()
    def counts_agree(self) -> None:
        info = self.run(self.driver.info())
        assert self.model.admits(info, self.now), f"driver: {info}, model: {self.model.jobs}"

    @invariant()
    def every_job_is_where_the_model_says(self) -> None:
        """`get_job` finds each job the model holds where it should be (any other job, or one
        missing, shows in the counts)."""
        assert isinstance(self.driver, InspectDriver)
        lapsed = {stored.job.id for stored in self.model.lapsed(self.now)}
        for job_id, stored in sorted(self.model.jobs.items()):
            view = self.run(self.driver.get_job(job_id))
            assert view is not None, f"{job_id} vanished from {visible_channel(stored, self.now)}"
            if job_id in lapsed:
                recovered = self.model.recovered(stored, self.now).channel
                assert view.channel in (Channel.RESERVED, recovered), f"{job_id}: {view}"
                continue
            assert view.channel is visible_channel(stored, self.now), f"{job_id}: {view}"
            assert view.job == stored.job, f"{job_id}: {view.job} != {stored.job}"
            if view.channel in (Channel.DELAYED, Channel.RESERVED, Channel.COMPLETED):
                assert view.due_at == instant_of_ms(stored.at_ms), f"{job_id}: {view}"


async def call(driver: Driver, how: str, job: PersistedJob) -> bool:
    """Settle `job` the way `how` names; return whether the driver acted."""
    if how == "ack":
        return await driver.ack(job)
    if how == "fail":
        return await driver.fail(job)
    if how == "retry":
        return await driver.retry(job)
    if how == "release":
        return await driver.release(job)
    return await driver.renew(job)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_driver_agrees_with_the_reference_model(name: str, tmp_path: Path) -> None:
    machine = type(
        f"{name}_against_model",
        (DriverAgainstModel,),
        {"driver_name": name, "scratch": tmp_path},
    )
    run_state_machine_as_test(machine, settings=SETTINGS)
