"""corequeue's side of the benchmark: enqueue, drain and lateness on one driver.

The parent process enqueues and measures; workers are separate processes (`bench.py worker`,
see worker.py) that a line on stdin starts and a second line stops, so each measured drain
starts with warm connections and ends when the store says every job is gone (acked), not when
handlers ran. A worker told how many jobs to expect also says "done" once its listener has run
them all (the drains at scale use that, so they never count a table of a million rows while
timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from worker import Recorder, Target, WorkerOptions, io_call, payload, redis_client

import corequeue as cq
from corequeue.drivers.base import Channel, Driver

BENCH_DIR = Path(__file__).resolve().parent
POLL_SECONDS = 0.005  # how often the parent asks the store whether the queue is empty
WORKER_START_SECONDS = 60.0
FILL_BATCH = 10_000  # jobs per dispatch_many when filling a queue


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


Workload = Callable[[], Awaitable[Any]]


async def attempt(label: str, workload: Workload) -> Any:
    """Run one workload; a failure becomes its figure (`{"error": ...}`), so the others run."""
    try:
        return await workload()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        print(f"-- {label} failed: {error}", file=sys.stderr, flush=True)
        return {"error": error}


async def empty(queue: cq.Queue) -> None:
    """Delete every job of the queue, in every channel."""
    for channel in Channel:
        await queue.driver.flush(channel)


async def fill(queue: cq.Queue, count: int, defer: timedelta | None = None) -> None:
    """Store `count` jobs (deferred by `defer` when given) in batches of `FILL_BATCH`."""
    for first in range(0, count, FILL_BATCH):
        numbers = range(first, min(count, first + FILL_BATCH))
        if defer is None:
            await queue.dispatch_many([payload(n) for n in numbers])
        else:
            await queue.dispatch_many([cq.adjust(payload(n), defer=defer) for n in numbers])


# --- workers -----------------------------------------------------------------------------------


class WorkerProcess:
    """A `bench.py worker` child: started, told to go, told to stop, then it reports."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, target: Target, options: WorkerOptions) -> WorkerProcess:
        """Start a worker and wait until it is connected and ready."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH_DIR / "bench.py"),
            "worker",
            *target.as_args(),
            *options.as_args(),
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

    async def wait_done(self, deadline_seconds: float) -> None:
        """Return once the worker says its listener ran every job it was told to expect."""
        line = await asyncio.wait_for(self._read_line(), deadline_seconds)
        if line != "done":
            raise RuntimeError(f"worker stopped before it ran every job: {line!r}")

    async def stop(self) -> dict[str, Any]:
        """Stop the worker gracefully and return what it recorded."""
        self._write_line("stop")
        line = await asyncio.wait_for(self._read_line(), 30)
        await self.process.wait()
        report: dict[str, Any] = json.loads(line)
        return report

    async def kill(self) -> None:
        """End the worker at once, after a measurement that failed."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def _write_line(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def _read_line(self) -> str:
        assert self.process.stdout is not None
        return (await self.process.stdout.readline()).decode().strip()


@contextlib.asynccontextmanager
async def started(
    target: Target, options: WorkerOptions, processes: int = 1
) -> AsyncIterator[list[WorkerProcess]]:
    """Start `processes` workers; kill them if the measurement inside fails."""
    workers = list(
        await asyncio.gather(*(WorkerProcess.start(target, options) for _ in range(processes)))
    )
    try:
        yield workers
    except BaseException:
        await asyncio.gather(*(worker.kill() for worker in workers))
        raise


async def wait_until_empty(driver: Driver, deadline_seconds: float) -> None:
    """Return once nothing is waiting, delayed or reserved; raise TimeoutError at the deadline."""
    async with asyncio.timeout(deadline_seconds):
        while (await driver.info()).pending:  # noqa: ASYNC110 (the store is in another process)
            await asyncio.sleep(POLL_SECONDS)


async def kept_result_bytes(target: Target, queue: cq.Queue, count: int) -> float:
    """Redis only: the server memory one kept result takes (`used_memory` with `count` results
    kept, minus after deleting them, over `count`), results as the bench listener returns."""
    await fill(queue, count)
    options = WorkerOptions(keep_results_seconds=3600)
    await drain(target, queue, 1, options)
    client = redis_client(target.url)
    try:
        kept = (await queue.info()).completed
        with_results = int((await client.info("memory"))["used_memory"])
        await queue.driver.flush(Channel.COMPLETED)
        without = int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()
    if kept != count:
        raise RuntimeError(f"{kept} of {count} results kept")
    return (with_results - without) / count


# --- drain -------------------------------------------------------------------------------------


async def drain(target: Target, queue: cq.Queue, processes: int, options: WorkerOptions) -> float:
    """Drain the filled queue with `processes` worker processes; return jobs per second."""
    count = (await queue.info()).pending
    if target.driver == "in_process":
        return await _drain_here(target, queue, count, options)
    async with started(target, options, processes) as workers:
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


async def _drain_here(target: Target, queue: cq.Queue, count: int, options: WorkerOptions) -> float:
    """Drain in this process (the in-process driver lives in this process's memory)."""
    drainer = cq.Queue(
        queue.driver,
        parallelism=options.parallelism,
        prefetch=options.prefetch,
        name=queue.name,
        keep_results=options.keep_results,
    )  # a queue of its own, so listeners of earlier drains do not run again
    io_client = redis_client(options.io_url) if options.io_url else None
    recorder = Recorder(io_call(io_client, target))
    drainer.subscribe(cq.listen(dict, recorder.handle))
    start = time.perf_counter()
    consuming = asyncio.create_task(drainer.consume(handle_signals=False))
    await wait_until_empty(queue.driver, deadline_seconds=600)
    elapsed = time.perf_counter() - start
    consuming.cancel()
    await asyncio.gather(consuming, return_exceptions=True)
    if io_client is not None:
        await io_client.aclose()
    return count / elapsed


async def drain_io(target: Target, queue: cq.Queue, options: WorkerOptions) -> dict[str, float]:
    """Drain the filled queue with one process whose listener makes one Redis call per job.

    Returns jobs per second and how many calls the listeners made (all of them, or it raises).
    """
    client = redis_client(options.io_url)
    try:
        await client.delete(target.io_key)
        count = (await queue.info()).pending
        rate = await drain(target, queue, 1, options)
        calls = int(await client.get(target.io_key) or 0)
        await client.delete(target.io_key)
    finally:
        await client.aclose()
    if calls < count:
        raise RuntimeError(f"{calls} of {count} listener calls reached Redis")
    return {"rate": rate, "calls": float(calls)}


async def drain_counted(
    target: Target, queue: cq.Queue, count: int, options: WorkerOptions
) -> tuple[float, dict[str, Any]]:
    """Drain `count` waiting jobs with one worker process; return jobs/s and its report.

    Timed until the worker's listener has run `count` jobs (acks trail by at most a batch and
    are checked afterwards), so the drain with a million delayed jobs stored beside is never
    timed by counting those rows. Other jobs may be delayed in the queue meanwhile.
    """
    async with started(target, replace(options, expect=count)) as (worker,):
        start = time.perf_counter()
        worker.go()
        await worker.wait_done(deadline_seconds=max(600.0, count / 1000))
        elapsed = time.perf_counter() - start
        report = await worker.stop()
    info = await queue.info()
    if info.waiting or info.reserved:
        raise RuntimeError(f"after the drain: {info.waiting} waiting, {info.reserved} reserved")
    return count / elapsed, report


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
        async with started(target, WorkerOptions(parallelism=8)) as (worker,):
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
