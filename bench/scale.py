"""Cost at scale (`bench.py --scale`): store memory per job, leaks, and drains beside a backlog.

With N jobs (`--scale-jobs`, a million by default) and a tenth of it, M:

- Redis memory per waiting and per delayed job: the server's `used_memory` after N jobs are
  stored, minus before, over N;
- a drain of N jobs by one worker process: its VmRSS after M jobs and after N (a leak shows as
  growth), the drain rate, and on Redis `used_memory` after the drain against before the fill;
- M waiting jobs drained with nothing else stored, then with N delayed jobs stored beside them
  (due in a day): the two rates and their ratio.

Each takes minutes at a million jobs; a smoke run uses `--scale-jobs 20000`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from corequeue_workloads import Workload, attempt, drain_counted, empty, fill
from worker import Target, WorkerOptions, redis_client

import corequeue as cq

if TYPE_CHECKING:
    from redis.asyncio import Redis

LATER = timedelta(days=1)  # delayed jobs stay delayed for the whole measurement
SETTLE_SECONDS = 1.0  # lets the server free what a drain released before memory is read


async def measure_scale(
    target: Target, queue: cq.Queue, jobs: int, worker: WorkerOptions
) -> dict[str, Any]:
    """Run the workloads at scale on one driver (not InProcess: its jobs live in the worker)."""
    if target.driver == "in_process":
        return {"error": "InProcess keeps its jobs in the worker's own memory"}
    figures: dict[str, Any] = {"jobs": jobs}
    steps: list[tuple[str, Workload]] = []
    if target.driver == "redis":
        steps.append(("memory", partial(redis_memory_per_job, target, queue, jobs)))
    steps.append(("rss", partial(worker_rss, target, queue, jobs, worker)))
    steps.append(("beside", partial(drain_beside_delayed, target, queue, jobs, worker)))
    for name, workload in steps:
        await empty(queue)
        figures[name] = await attempt(f"{target.driver} scale {name}", workload)
    return figures


async def redis_memory_per_job(target: Target, queue: cq.Queue, jobs: int) -> dict[str, float]:
    """Return the growth of Redis `used_memory` per waiting job and per delayed job."""
    client = redis_client(target.url)
    try:
        figures = {}
        for name, defer in (("waiting", None), ("delayed", LATER)):
            await empty(queue)
            before = await used_memory(client)
            await fill(queue, jobs, defer)
            figures[name] = (await used_memory(client) - before) / jobs
        await empty(queue)
        return figures
    finally:
        await client.aclose()


async def worker_rss(
    target: Target, queue: cq.Queue, jobs: int, worker: WorkerOptions
) -> dict[str, Any]:
    """Drain `jobs` jobs with one worker process; its VmRSS after a tenth and after all.

    On Redis, also the server's `used_memory` before the fill, after it, and after the drain.
    """
    tenth = max(1, jobs // 10)
    client = redis_client(target.url) if target.driver == "redis" else None
    try:
        await empty(queue)
        baseline = await _memory_or_none(client)
        await fill(queue, jobs)
        filled = await _memory_or_none(client)
        rate, report = await drain_counted(target, queue, jobs, _rss_at(worker, tenth, jobs))
        await asyncio.sleep(SETTLE_SECONDS)
        drained = await _memory_or_none(client)
    finally:
        if client is not None:
            await client.aclose()
    rss = report["rss_kb"]
    figures: dict[str, Any] = {"rate": rate, "tenth": tenth, "rss_kb": rss}
    figures["growth"] = rss[str(jobs)] / rss[str(tenth)] - 1
    if baseline is not None:
        figures["used_memory"] = {"baseline": baseline, "filled": filled, "drained": drained}
    return figures


async def drain_beside_delayed(
    target: Target, queue: cq.Queue, jobs: int, worker: WorkerOptions
) -> dict[str, float]:
    """Drain a tenth of `jobs` waiting jobs alone, then beside `jobs` delayed ones; both rates."""
    tenth = max(1, jobs // 10)
    await empty(queue)
    await fill(queue, tenth)
    alone, _ = await drain_counted(target, queue, tenth, worker)
    await fill(queue, jobs, LATER)
    await fill(queue, tenth)
    beside, _ = await drain_counted(target, queue, tenth, worker)
    await empty(queue)
    return {"waiting": tenth, "delayed": jobs, "alone": alone, "beside": beside}


async def used_memory(client: Redis) -> int:
    """Return the server's `used_memory` in bytes."""
    info = await client.info("memory")
    return int(info["used_memory"])


async def _memory_or_none(client: Redis | None) -> int | None:
    return None if client is None else await used_memory(client)


def _rss_at(worker: WorkerOptions, *counts: int) -> WorkerOptions:
    return WorkerOptions(worker.parallelism, worker.prefetch, rss_at=counts)
