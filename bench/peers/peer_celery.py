"""Celery on Redis: one worker process with a pool of 8 threads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from recorder import hit, io_sync

WORKER = "1 process, 8 threads"

app = Celery("peer_celery", broker=os.environ["BENCH_REDIS_URL"])
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False


def _handle(data: dict[str, Any]) -> None:
    if data.get("io"):
        io_sync()
    hit(data)


handle = app.task(name="handle")(_handle)


def enqueue_sync(payloads: list[dict[str, Any]]) -> None:
    """One delay() per job, from plain synchronous code."""
    for data in payloads:
        handle.delay(data)


async def enqueue(payloads: list[dict[str, Any]]) -> None:
    """The same calls, from a coroutine."""
    enqueue_sync(payloads)


async def defer(data: dict[str, Any], delay_seconds: float) -> None:
    """Send a job with a countdown (Celery keeps it in the worker's memory until due)."""
    handle.apply_async(args=(data,), countdown=delay_seconds)


def worker_command(bin_dir: Path) -> list[str]:
    """The worker process."""
    return [
        str(bin_dir / "celery"), "-A", "peer_celery", "worker", "--pool", "threads",
        "--concurrency", "8", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        "--without-heartbeat",
    ]  # fmt: skip
