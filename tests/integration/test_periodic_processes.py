"""Three worker processes share one store and one 1-second schedule; one is SIGKILLed mid-run.

Each worker (this module run as `python -m tests.integration.test_periodic_processes CONFIG`)
consumes the queue and ticks the schedule `beat`. It keeps a ledger outside the store, one file
per process opened with O_APPEND (`tests.chaos.ledger`): what the store reserved and acked,
when the listener started and finished each slot's job, and every `enqueue_slot` the store
confirmed (`enqueued`) or refused (`refused`: another worker had the slot).

The controller starts three workers, takes the next eleven slots as the window (ten seconds),
and once the window's fifth slot is acked, SIGKILLs the worker that enqueued the latest slot and
starts a new one in its place: the kill lands between slots, when no slot's job is in flight, so
at-least-once delivery has nothing to redeliver and the ledger must show every slot of the
window enqueued exactly once and run exactly once, each listener starting no earlier than its
slot (the wall clock of this one machine, which every store's clock is too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import corequeue as cq
from corequeue.drivers.base import Channel
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.redis import RedisDriver
from corequeue.periodic import slot_job_id
from tests.chaos.ledger import LedgerWriter, Run, read_ledgers
from tests.chaos.worker import make_driver
from tests.support.driver_postgres import TEST_SCHEMA, delete_queue
from tests.support.servers import POSTGRES_DSN_VAR, REDIS_URL_VAR, server_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE = "beat"
EVERY_MS = 1_000
WINDOW_SLOTS = 11
"""Slots in the window: ten seconds of a 1-second schedule, both ends included."""
KILL_AFTER = 4
"""The kill follows the ack of the window's slot with this index (its fifth)."""
WORKERS = 3
LEASE = timedelta(seconds=5)
DEADLINE_SECONDS = 30.0
"""How long any one wait may take before the test fails (the run itself takes about 14 s)."""


# --- the worker process ----------------------------------------------------------------------


async def work(config: dict[str, Any]) -> None:
    """Consume the queue and tick `beat` every second, writing down everything in the ledger."""
    ledger = LedgerWriter(Path(config["ledger"]))
    driver = make_driver({**config, "lease_ms": LEASE // timedelta(milliseconds=1)}, ledger)
    _record_slots(driver, ledger)
    queue = cq.Queue(driver, parallelism=2, shutdown_grace=timedelta(seconds=2))

    async def beat(job: cq.ReceivedJob) -> None:
        ledger.write("start", job.id, job.attempt)
        ledger.write("done", job.id, job.attempt, sync=True)

    queue.subscribe(cq.listen(str, beat))
    queue.periodic(timedelta(milliseconds=EVERY_MS), "tick", name=SCHEDULE)
    ledger.write("ready", "-", 0)
    try:
        await queue.consume()
    finally:
        await queue.close()


def _record_slots(driver: cq.Driver, ledger: LedgerWriter) -> None:
    """Make `driver.enqueue_slot` write what the store answered (after it answered)."""
    enqueue_slot = driver.enqueue_slot

    async def recorded(name: str, slot_ms: int, job: cq.PersistedJob) -> bool:
        enqueued = await enqueue_slot(name, slot_ms, job)
        ledger.write("enqueued" if enqueued else "refused", job.id, 0, sync=enqueued)
        return enqueued

    setattr(driver, "enqueue_slot", recorded)  # noqa: B010  # an instance attribute wins


# --- the stores --------------------------------------------------------------------------------


@dataclass
class Store:
    """A queue on one durable store, as the worker processes reach it."""

    kind: str
    config: dict[str, Any]

    def driver(self) -> cq.Driver:
        """A driver of the controller's own, on the same queue."""
        target, queue = self.config["target"], self.config["queue"]
        if self.kind == "sqlite":
            return cq.SQLiteDriver(Path(target), queue)
        if self.kind == "redis":
            return RedisDriver.from_url(target, queue)
        return PostgresDriver(target, queue, self.config["schema"])


@asynccontextmanager
async def shared_store(kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    """Yield a fresh queue on `kind`, its tables ready; delete what the run left afterwards."""
    queue = f"periodic-{uuid.uuid4().hex[:12]}"
    config = {"driver": kind, "queue": queue, "schema": "", "target": str(tmp_path / "jobs.db")}
    if kind == "redis":
        config["target"] = server_url(REDIS_URL_VAR)
    elif kind == "postgres":
        config.update(target=server_url(POSTGRES_DSN_VAR), schema=TEST_SCHEMA)
    store = Store(kind, config)
    driver = store.driver()
    try:
        await driver.schedule_slots()  # creates or migrates the tables before workers race to
        yield store
    finally:
        await driver.forget_schedule(SCHEDULE)
        for channel in Channel:
            await driver.flush(channel)
        await driver.close()
        if kind == "postgres":
            await delete_queue(config["target"], TEST_SCHEMA, queue)


# --- the controller ----------------------------------------------------------------------------


@dataclass
class Pool:
    """The worker processes: started, one killed and replaced, stopped at the end."""

    store: Store
    folder: Path
    live: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: int = 0
    killed: list[int] = field(default_factory=list)
    exit_codes: dict[int, int] = field(default_factory=dict)

    def start(self) -> int:
        """Start one worker; return its number."""
        number = self.started
        self.started += 1
        self.ledger(number).touch()
        config = {**self.store.config, "ledger": str(self.ledger(number))}
        with (self.folder / f"worker-{number}.err").open("wb") as errors:
            self.live[number] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.test_periodic_processes",
                    json.dumps(config),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        return number

    def kill(self, number: int) -> None:
        """SIGKILL worker `number` and reap it."""
        process = self.live.pop(number)
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.killed.append(number)

    def stop(self) -> None:
        """SIGTERM every live worker; SIGKILL one that does not stop within the deadline."""
        for process in self.live.values():
            process.send_signal(signal.SIGTERM)
        for number, process in self.live.items():
            try:
                self.exit_codes[number] = process.wait(timeout=DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                self.exit_codes[number] = process.wait()
        self.live.clear()

    def ledger(self, number: int) -> Path:
        return self.folder / f"worker-{number}.ledger"

    def ledgers(self) -> list[tuple[int, Path]]:
        return [(number, self.ledger(number)) for number in range(self.started)]

    def events(self, name: str) -> Iterator[tuple[int, str, int]]:
        """Yield (worker, job id, unix µs) of every ledger line of event `name`."""
        for number, path in self.ledgers():
            for line in path.read_text().splitlines():
                event, job_id, _, at_us, *_ = line.split()
                if event == name:
                    yield number, job_id, int(at_us)

    def errors(self) -> str:
        tails = []
        for number in range(self.started):
            text = (self.folder / f"worker-{number}.err").read_text(errors="replace")
            if text.strip():
                tails.append(f"--- worker {number}\n{text[-2000:]}")
        return "\n".join(tails)


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with shared_store(request.param, tmp_path) as fresh:
        yield fresh


async def test_three_processes_enqueue_and_run_each_slot_once_through_a_kill(
    store: Store, tmp_path: Path
) -> None:
    pool = Pool(store, tmp_path)
    try:
        window, victim, replacement = await run_schedule(pool)
    finally:
        pool.stop()

    errors = pool.errors()
    runs = read_ledgers(pool.ledgers()).by_job()
    enqueued = Counter(job_id for _, job_id, _ in pool.events("enqueued"))
    ids = [slot_job_id(SCHEDULE, slot_ms) for slot_ms in window]
    assert all(count == 1 for count in enqueued.values()), (enqueued, errors)
    assert all(len(held) == 1 for held in runs.values()), (runs, errors)
    assert [enqueued[job_id] for job_id in ids] == [1] * WINDOW_SLOTS, errors
    for slot_ms, job_id in zip(window, ids, strict=True):
        (run,) = runs[job_id]
        assert run.done_us is not None, (job_id, errors)
        assert run.started_us is not None
        assert run.started_us >= slot_ms * 1000, f"{job_id} started early"
    assert pool.killed == [victim]
    assert any(worker == replacement for worker, _, _ in _ticks(pool)), "replacement never ticked"
    assert set(pool.exit_codes.values()) == {0}, errors
    print(figures(store.kind, pool, window, [runs[job_id][0] for job_id in ids]))


async def run_schedule(pool: Pool) -> tuple[list[int], int, int]:
    """Run three workers over the window, killing one and starting another in its place.

    Returns:
        The window's slots (epoch ms), the killed worker's number and its replacement's.
    """
    for _ in range(WORKERS):
        pool.start()
    await until(lambda: len(list(pool.events("ready"))) == WORKERS, "three workers ready", pool)
    first_ms = (time.time_ns() // 1_000_000 // EVERY_MS + 2) * EVERY_MS
    window = [first_ms + n * EVERY_MS for n in range(WINDOW_SLOTS)]
    kill_id = slot_job_id(SCHEDULE, window[KILL_AFTER])
    await until(lambda: _acked(pool, kill_id), f"{kill_id} acked", pool)
    victim = max(pool.events("enqueued"), key=lambda event: event[2])[0]
    pool.kill(victim)
    replacement = pool.start()
    last_id = slot_job_id(SCHEDULE, window[-1])
    await until(lambda: _acked(pool, last_id), f"{last_id} acked", pool)
    return window, victim, replacement


async def until(check: Callable[[], bool], what: str, pool: Pool) -> None:
    """Poll `check` until it holds; fail after DEADLINE_SECONDS with the workers' errors."""
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            while not check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}\n{pool.errors()}") from None


def _acked(pool: Pool, job_id: str) -> bool:
    return any(acked == job_id for _, acked, _ in pool.events("acked"))


def _ticks(pool: Pool) -> Iterator[tuple[int, str, int]]:
    yield from pool.events("enqueued")
    yield from pool.events("refused")


def figures(kind: str, pool: Pool, window: list[int], runs: list[Run]) -> str:
    """One line of what the run showed, for the test log."""
    by_worker = Counter(worker for worker, job_id, _ in pool.events("enqueued"))
    refused = sum(1 for _ in pool.events("refused"))
    late_ms = sorted(
        ((run.started_us or 0) - slot_ms * 1000) / 1000
        for run, slot_ms in zip(runs, window, strict=True)
    )
    seconds = (window[-1] - window[0]) / 1000
    median = late_ms[len(late_ms) // 2]
    return (
        f"periodic processes on {kind}: {len(window)} slots in {seconds:.0f} s, {WORKERS} "
        f"workers, SIGKILL of worker {pool.killed} and a replacement; each slot enqueued once "
        f"(by worker: {dict(sorted(by_worker.items()))}, {refused} refused as taken) and run "
        f"once; listener start after the slot: median {median:.1f} ms, max {late_ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(work(json.loads(sys.argv[1])))
