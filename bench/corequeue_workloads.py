"""corequeue's side of the benchmark: the three workloads on one driver, and the worker process.

The parent process enqueues and measures; workers are separate processes (`bench.py worker`)
that a line on stdin starts and a second line stops, so each measured drain starts with warm
connections and ends when the store says every job is gone (acked), not when handlers ran.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import corequeue as cq
from corequeue.drivers.base import Channel, Driver

BENCH_DIR = Path(__file__).resolve().parent
POLL_SECONDS = 0.005  # how often the parent asks the store whether the queue is empty
WORKER_START_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Target:
    """Which corequeue driver to measure and where its store is."""

    driver: str  # "in_process", "sqlite", "redis" or "postgres"
    url: str = ""  # Redis URL, PostgreSQL DSN or SQLite file; unused for in_process
    queue: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:12]}")

    def as_args(self) -> list[str]:
        """Return the worker command-line arguments naming this target."""
        return ["--driver", self.driver, "--url", self.url, "--queue", self.queue]


def make_driver(target: Target) -> Driver:
    """Return a fresh driver of `target` (one per process)."""
    if target.driver == "in_process":
        return cq.InProcessDriver()
    if target.driver == "sqlite":
        return cq.SQLiteDriver(target.url, name=target.queue)
    if target.driver == "redis":
        from corequeue.drivers.redis import RedisDriver

        return RedisDriver.from_url(target.url, name=target.queue)
    if target.driver == "postgres":
        from corequeue.drivers.postgres import PostgresDriver

        return PostgresDriver(target.url, name=target.queue)
    raise ValueError(f"unknown driver {target.driver!r}")


def payload(n: int) -> dict[str, Any]:
    """Return the small dict payload every job carries."""
    return {"to": "user@example.com", "subject": "welcome", "n": n}


# --- enqueue -----------------------------------------------------------------------------------


async def enqueue_one_by_one(queue: cq.Queue, count: int) -> float:
    """Dispatch `count` jobs with one awaited `dispatch` each; return jobs per second."""
    payloads = [payload(n) for n in range(count)]
    start = time.perf_counter()
    for data in payloads:
        await queue.dispatch(data)
    return count / (time.perf_counter() - start)


async def enqueue_many(queue: cq.Queue, count: int) -> float:
    """Dispatch `count` jobs with one `dispatch_many` call; return jobs per second."""
    payloads = [payload(n) for n in range(count)]
    start = time.perf_counter()
    await queue.dispatch_many(payloads)
    return count / (time.perf_counter() - start)


async def empty(queue: cq.Queue) -> None:
    """Delete every job of the queue, in every channel."""
    for channel in Channel:
        await queue.driver.flush(channel)


# --- workers -----------------------------------------------------------------------------------


class WorkerProcess:
    """A `bench.py worker` child: started, told to go, told to stop, then it reports."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(
        cls, target: Target, mode: str, parallelism: int, prefetch: int = 0
    ) -> WorkerProcess:
        """Start a worker and wait until it is connected and ready."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH_DIR / "bench.py"),
            "worker",
            *target.as_args(),
            "--mode",
            mode,
            "--parallelism",
            str(parallelism),
            "--prefetch",
            str(prefetch),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(process)
        line = await asyncio.wait_for(worker._read_line(), WORKER_START_SECONDS)
        if line != "ready":
            raise RuntimeError(f"worker did not start: {line!r}")
        return worker

    def go(self) -> None:
        """Let the worker start consuming."""
        self._write_line("go")

    async def stop(self) -> dict[str, Any]:
        """Stop the worker gracefully and return what it recorded."""
        self._write_line("stop")
        line = await asyncio.wait_for(self._read_line(), 30)
        await self.process.wait()
        report: dict[str, Any] = json.loads(line)
        return report

    def _write_line(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def _read_line(self) -> str:
        assert self.process.stdout is not None
        return (await self.process.stdout.readline()).decode().strip()


async def wait_until_empty(driver: Driver, deadline_seconds: float) -> None:
    """Return once nothing is waiting, delayed or reserved; raise TimeoutError at the deadline."""
    async with asyncio.timeout(deadline_seconds):
        while (await driver.info()).pending:  # noqa: ASYNC110 (the store is in another process)
            await asyncio.sleep(POLL_SECONDS)


# --- drain -------------------------------------------------------------------------------------


async def drain(
    target: Target, queue: cq.Queue, processes: int, parallelism: int, prefetch: int = 0
) -> float:
    """Drain the filled queue with `processes` worker processes; return jobs per second."""
    count = (await queue.info()).pending
    if target.driver == "in_process":
        return await _drain_here(queue, count)
    workers = await asyncio.gather(
        *(WorkerProcess.start(target, "drain", parallelism, prefetch) for _ in range(processes))
    )
    start = time.perf_counter()
    for worker in workers:
        worker.go()
    await wait_until_empty(queue.driver, deadline_seconds=600)
    elapsed = time.perf_counter() - start
    reports = await asyncio.gather(*(worker.stop() for worker in workers))
    handled = sum(report["handled"] for report in reports)
    if handled < count:
        raise RuntimeError(f"{handled} of {count} jobs ran")
    return count / elapsed


async def _drain_here(queue: cq.Queue, count: int) -> float:
    """Drain in this process (the in-process driver lives in this process's memory)."""
    recorder = Recorder()
    queue.subscribe(cq.listen(dict, recorder.handle))
    start = time.perf_counter()
    consuming = asyncio.create_task(queue.consume(handle_signals=False))
    await wait_until_empty(queue.driver, deadline_seconds=600)
    elapsed = time.perf_counter() - start
    consuming.cancel()
    await asyncio.gather(consuming, return_exceptions=True)
    return count / elapsed


# --- deferred lateness -------------------------------------------------------------------------


async def lateness(
    target: Target, queue: cq.Queue, samples: int, defer_ms: int
) -> dict[str, float]:
    """Defer `samples` jobs by `defer_ms` to an idle worker; return lateness figures in ms.

    Jobs are dispatched at random gaps of 2-12 ms, so due times fall anywhere between a
    worker's internal ticks. Lateness is the handler's start minus the exact due instant (the
    clock read just before `dispatch`, plus the delay, in nanoseconds); a job that starts
    before that instant counts as early, by however little. The stores run on this machine, so
    their clocks are this clock.
    """
    if target.driver == "in_process":
        recorder = Recorder()
        queue.subscribe(cq.listen(dict, recorder.handle))
        consuming = asyncio.create_task(queue.consume(handle_signals=False))
        report = await _defer_jobs(queue, samples, defer_ms, lambda: recorder.report())
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
    else:
        worker = await WorkerProcess.start(target, "lateness", 8)
        worker.go()
        await asyncio.sleep(0.2)  # the worker is idle, blocked in its pop
        await _defer_jobs(queue, samples, defer_ms, None)
        await wait_until_empty(queue.driver, deadline_seconds=60)
        report = await worker.stop()
    return summarise(report["late_ms"], report["early"])


async def _defer_jobs(
    queue: cq.Queue,
    samples: int,
    defer_ms: int,
    in_process_report: Callable[[], dict[str, Any]] | None,
) -> dict[str, Any]:
    rng = random.Random(8)
    for n in range(samples):
        data = payload(n) | {"due_ns": time.time_ns() + defer_ms * 1_000_000}
        await queue.dispatch(cq.adjust(data, defer=timedelta(milliseconds=defer_ms)))
        await asyncio.sleep(rng.uniform(0.002, 0.012))
    if in_process_report is None:
        return {}
    await wait_until_empty(queue.driver, deadline_seconds=60)
    return in_process_report()


def summarise(late_ms: list[float], early: int) -> dict[str, float]:
    """Return p50, p99, max and min lateness in ms, and how many jobs ran early."""
    ordered = sorted(late_ms)
    if not ordered:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "min": math.nan, "early": 0}
    return {
        "p50": percentile(ordered, 0.50),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
        "min": ordered[0],
        "early": float(early),
        "samples": float(len(ordered)),
    }


def percentile(ordered: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# --- inside a worker process -------------------------------------------------------------------


class Recorder:
    """What a worker's no-op listener records: how many jobs ran, and deferred lateness.

    A deferred job carries `due_ns`, its exact due instant; one that starts before it is early.
    """

    def __init__(self) -> None:
        self.handled = 0
        self.late_ms: list[float] = []
        self.early = 0

    async def handle(self, job: cq.ReceivedJob) -> None:
        """The listener: count the job, and note its lateness when it was deferred."""
        self.handled += 1
        due_ns = job.data.get("due_ns")
        if due_ns is not None:
            now_ns = time.time_ns()
            self.late_ms.append((now_ns - due_ns) / 1_000_000)
            if now_ns < due_ns:
                self.early += 1

    def report(self) -> dict[str, Any]:
        """Return what was recorded, as JSON-ready data."""
        return {"handled": self.handled, "late_ms": self.late_ms, "early": self.early}


async def run_worker(target: Target, parallelism: int, prefetch: int) -> None:
    """Body of `bench.py worker`: ready, wait for "go", consume until "stop", then report."""
    queue = cq.Queue(
        make_driver(target), parallelism=parallelism, prefetch=prefetch, name=target.queue
    )
    recorder = Recorder()
    queue.subscribe(cq.listen(dict, recorder.handle))
    await queue.info()  # connect before saying ready
    await _say("ready")
    await _read_line()
    consuming = asyncio.create_task(queue.consume(handle_signals=False))
    await _read_line()
    consuming.cancel()
    await asyncio.gather(consuming, return_exceptions=True)
    await queue.close()
    await _say(json.dumps(recorder.report()))


async def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _read_line() -> str:
    read: Callable[[], str] = sys.stdin.readline
    waiting: Awaitable[str] = asyncio.get_running_loop().run_in_executor(None, read)
    return await waiting
