"""RQ: one SimpleWorker (jobs run in the worker process, no fork per job) with its scheduler."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from recorder import hit, io_sync
from redis import Redis
from rq import Queue

WORKER = "SimpleWorker, with scheduler"

_queue = Queue("bench", connection=Redis.from_url(os.environ["BENCH_REDIS_URL"]))


def handle(data: dict[str, Any]) -> None:
    """The task: no-op, or one Redis call of its own for an I/O job."""
    if data.get("io"):
        io_sync()
    hit(data)


def enqueue_sync(payloads: list[dict[str, Any]]) -> None:
    """One enqueue per job, from plain synchronous code."""
    for data in payloads:
        _queue.enqueue(handle, data)


async def enqueue(payloads: list[dict[str, Any]]) -> None:
    """The same calls, from a coroutine."""
    enqueue_sync(payloads)


async def defer(data: dict[str, Any], delay_seconds: float) -> None:
    """Enqueue a job `delay_seconds` from now."""
    _queue.enqueue_in(timedelta(seconds=delay_seconds), handle, data)


def worker_command(bin_dir: Path) -> list[str]:
    """The worker process."""
    return [
        str(bin_dir / "rq"), "worker", "--worker-class", "rq.worker.SimpleWorker",
        "--with-scheduler", "--url", os.environ["BENCH_REDIS_URL"], "--quiet", "bench",
    ]  # fmt: skip
