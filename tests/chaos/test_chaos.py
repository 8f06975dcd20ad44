"""Chaos: no job is lost while workers are SIGKILLed at random and the store crashes once.

For each durable store, three worker processes consume a few thousand jobs (immediate,
deferred over a few seconds, failing-then-succeeding, and a few meant to fail) dispatched in
waves, while this controller SIGKILLs a random worker every second or two and starts a
replacement, and crashes and restarts the store once. Workers record every run in ledgers
outside the store; `analysis.py` states what the ledgers must show. The figures are printed at
the end of the pytest run.

Scale: COREQUEUE_CHAOS_JOBS jobs per store (default 5,000; the three stores take about a
minute on two cores). COREQUEUE_CHAOS_SEED replays the same plan and fault schedule (the timing
of a run still varies).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import corequeue as cq
from corequeue.drivers.base import QueueInfo
from tests.chaos.analysis import Expected, Faults, Figures, Kill, Outage, analyse
from tests.chaos.conftest import FIGURES
from tests.chaos.ledger import ChaosJob, Ledgers, now_us, read_ledgers
from tests.chaos.stores import ChaosStore, chaos_store

pytestmark = pytest.mark.chaos

ROOT = Path(__file__).resolve().parents[2]
JOBS = int(os.environ.get("COREQUEUE_CHAOS_JOBS", "5000"))
WORKERS = 3
PARALLELISM = 8
LEASE = timedelta(seconds=2)
WAVES = 6
WAVE_GAP_SECONDS = 2.0
DEFER_MAX_SECONDS = 5.0
RESTART_AT_SECONDS = 7.0
KILL_GAP_SECONDS = (0.6, 1.6)
DEADLINE_SECONDS = 150.0
STALL_SECONDS = 20.0  # a lease and every retry are far shorter: stuck jobs are lost jobs
MAX_ATTEMPTS = 25
GROUPS = 5
LIMITS = {"concurrency": 18, "group_concurrency": 5, "rate_per_second": 2000}
"""The limits of the run with flow control on: they bind (3 workers x 8 slots > 18), and every
job belongs to one of GROUPS groups."""


@dataclass(frozen=True, slots=True)
class Planned:
    """One job of the plan, before its due time is fixed at dispatch."""

    id: str
    kind: str
    defer_ms: int
    fail_first: int
    work_ms: int


def make_plan(rng: random.Random, count: int) -> list[Planned]:
    """Return `count` jobs: half immediate, 30% deferred, 18% flaky, 2% meant to fail."""
    plan = []
    for number in range(count):
        draw, work_ms = rng.random(), rng.randint(0, 20)
        job_id = f"job-{number:05d}"
        if draw < 0.5:
            plan.append(Planned(job_id, "immediate", 0, 0, work_ms))
        elif draw < 0.8:
            defer_ms = rng.randint(200, int(DEFER_MAX_SECONDS * 1000))
            plan.append(Planned(job_id, "deferred", defer_ms, 0, work_ms))
        elif draw < 0.98:
            plan.append(Planned(job_id, "flaky", 0, rng.randint(1, 2), work_ms))
        else:
            plan.append(Planned(job_id, "doomed", 0, 1000, work_ms))
    return plan


class WorkerPool:
    """The worker processes: started, killed at random, replaced, stopped at the end."""

    def __init__(
        self, store: ChaosStore, folder: Path, rng: random.Random, limits: bool = False
    ) -> None:
        self._limits = limits
        self._store = store
        self._folder = folder
        self._rng = rng
        self._live: dict[int, subprocess.Popen[bytes]] = {}
        self._started = 0
        self.kills: list[Kill] = []

    def ledgers(self) -> list[tuple[int, Path]]:
        """Return every worker's number and ledger file, live or dead."""
        return [(number, self._ledger(number)) for number in range(self._started)]

    def start_missing(self) -> None:
        """Start workers until WORKERS are alive."""
        while len(self._live) < WORKERS:
            self._start()

    def kill_random(self) -> None:
        """SIGKILL one worker that is consuming, if any is."""
        ready = [n for n in sorted(self._live) if self._ledger(n).stat().st_size > 0]
        if ready:
            self._kill(self._rng.choice(ready))

    def kill_all(self) -> None:
        """SIGKILL every live worker at once."""
        for number in sorted(self._live):
            self._kill(number)

    def stop(self) -> None:
        """Stop every worker gracefully (SIGTERM), killing those that do not stop in time."""
        for process in self._live.values():
            process.send_signal(signal.SIGTERM)
        for process in self._live.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._live.clear()

    def errors(self) -> str:
        """Return the tail of what the workers wrote to stderr."""
        tails = []
        for number in range(self._started):
            text = (self._folder / f"worker-{number}.err").read_text(errors="replace")
            if text.strip():
                tails.append(f"--- worker {number}\n{text[-2000:]}")
        return "\n".join(tails)

    def _start(self) -> None:
        number = self._started
        self._started += 1
        self._ledger(number).touch()
        config = {
            **self._store.worker_config(),
            "ledger": str(self._ledger(number)),
            "lease_ms": int(LEASE / timedelta(milliseconds=1)),
            "parallelism": PARALLELISM,
            "limits": LIMITS if self._limits else None,
        }
        with (self._folder / f"worker-{number}.err").open("wb") as errors:
            self._live[number] = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos.worker", json.dumps(config)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )

    def _kill(self, number: int) -> None:
        process = self._live.pop(number)
        process.send_signal(signal.SIGKILL)
        self.kills.append(Kill(number, now_us()))
        process.wait()

    def _ledger(self, number: int) -> Path:
        return self._folder / f"worker-{number}.ledger"


@dataclass
class Controller:
    """Runs the schedule: dispatch waves, random kills, one store restart; then waits."""

    store: ChaosStore
    queue: cq.Queue
    pool: WorkerPool
    plan: list[Planned]
    rng: random.Random
    due_us: dict[str, int] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)

    async def run(self) -> float:
        """Run the whole schedule; return its wall time in seconds."""
        started = time.monotonic()
        waves = [self.plan[i::WAVES] for i in range(WAVES)]
        chaos_ends = started + (WAVES - 1) * WAVE_GAP_SECONDS + DEFER_MAX_SECONDS
        next_wave, next_kill = started, started + self._kill_gap()
        self.pool.start_missing()
        while waves or time.monotonic() < chaos_ends:
            now = time.monotonic()
            if waves and now >= next_wave:
                await self._dispatch(waves.pop(0))
                next_wave += WAVE_GAP_SECONDS
            if not self.outages and now >= started + RESTART_AT_SECONDS:
                await self._restart_store()
            if now >= next_kill:
                self.pool.kill_random()
                self.pool.start_missing()
                next_kill = now + self._kill_gap()
            await asyncio.sleep(0.02)
        await self._until_finished(started + DEADLINE_SECONDS)
        return time.monotonic() - started

    async def _dispatch(self, wave: list[Planned]) -> None:
        jobs = []
        for planned in wave:
            due_us = now_us() + planned.defer_ms * 1000
            self.due_us[planned.id] = due_us
            payload = ChaosJob(planned.kind, due_us, planned.fail_first, planned.work_ms)
            attempts = 2 if planned.kind == "doomed" else MAX_ATTEMPTS
            defer = timedelta(milliseconds=planned.defer_ms)
            group = f"g{zlib.crc32(planned.id.encode()) % GROUPS}"
            jobs.append(
                cq.adjust(
                    payload, defer=defer, max_attempts=attempts, unique_id=planned.id, group=group
                )
            )
        async with asyncio.timeout(30):
            while True:
                try:
                    await self.queue.dispatch_many(jobs)
                    return
                except cq.StoreUnavailable:  # the store restarting: nothing was acknowledged
                    await asyncio.sleep(0.1)

    async def _restart_store(self) -> None:
        begin = now_us()
        await self.store.restart(self.pool)
        self.outages.append(Outage(begin, now_us()))

    async def _until_finished(self, deadline: float) -> None:
        """Return once every job is done or parked, or nothing moved for STALL_SECONDS."""
        doomed = sum(1 for planned in self.plan if planned.kind == "doomed")
        meant = {planned.id for planned in self.plan if planned.kind != "doomed"}
        last_seen, last_change = -1, time.monotonic()
        while time.monotonic() < min(deadline, last_change + STALL_SECONDS):
            done = self.ledgers().done_ids()
            if len(done) != last_seen:
                last_seen, last_change = len(done), time.monotonic()
            if meant <= done:
                info = await self._info()
                if info is not None and info.pending == 0 and info.failed + info.timeout == doomed:
                    return
            await asyncio.sleep(0.5)

    async def _info(self) -> QueueInfo | None:
        try:
            return await self.queue.info()
        except cq.StoreUnavailable:
            return None

    def ledgers(self) -> Ledgers:
        return read_ledgers(self.pool.ledgers())

    def _kill_gap(self) -> float:
        return self.rng.uniform(*KILL_GAP_SECONDS)


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChaosStore]:
    async with chaos_store(request.param, tmp_path) as chaos:
        yield chaos


@pytest.mark.parametrize("limits", [False, True], ids=["no limits", "limits"])
async def test_no_job_is_lost_while_workers_are_killed_and_the_store_restarts(
    store: ChaosStore, tmp_path: Path, record_property: Any, limits: bool
) -> None:
    """With `limits`, workers run under LIMITS too: slots held by killed workers come back."""
    seed = int(os.environ.get("COREQUEUE_CHAOS_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    plan = make_plan(rng, JOBS)
    pool = WorkerPool(store, tmp_path, rng, limits=limits)
    queue = cq.Queue(store.driver())
    controller = Controller(store, queue, pool, plan, rng)

    try:
        wall_s = await controller.run()
    finally:
        pool.stop()
    info = await queue.info()
    await queue.close()

    expected = Expected(
        kinds={planned.id: planned.kind for planned in plan},
        due_us=controller.due_us,
        lease_us=int(LEASE / timedelta(microseconds=1)),
    )
    faults = Faults(pool.kills, controller.outages, expected.lease_us)
    keep_for_post_mortem(tmp_path, seed, expected, faults)
    figures = analyse(store.name, expected, controller.ledgers(), faults, wall_s)
    report(figures, seed, record_property)
    doomed = figures.meant_to_fail
    assert info.pending == 0, f"jobs left in the store: {info} (seed {seed})"
    assert info.failed + info.timeout == doomed, f"{info}, {doomed} meant to fail (seed {seed})"
    assert not figures.problems, "\n".join([f"seed {seed}", *figures.problems[:20], pool.errors()])


def keep_for_post_mortem(folder: Path, seed: int, expected: Expected, faults: Faults) -> None:
    """Write the plan and the faults beside the ledgers, to replay `analyse` on a failure."""
    record = {"seed": seed, "expected": asdict(expected), "faults": asdict(faults)}
    (folder / "run.json").write_text(json.dumps(record))


def report(figures: Figures, seed: int, record_property: Any) -> None:
    """Print the figures now, record them in the test report, and keep them for the summary."""
    line = f"{figures.summary()} (seed {seed})"
    print(line)
    record_property("chaos", line)
    FIGURES.append(figures)
