"""Huey on Redis: one consumer process with 8 worker threads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huey import RedisHuey
from recorder import hit, io_sync

WORKER = "1 process, 8 threads"

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


def _handle(data: dict[str, Any]) -> None:
    if data.get("io"):
        io_sync()
    hit(data)


handle = huey.task(name="handle")(_handle)


def enqueue_sync(payloads: list[dict[str, Any]]) -> None:
    """One call per job, from plain synchronous code."""
    for data in payloads:
        handle(data)


async def enqueue(payloads: list[dict[str, Any]]) -> None:
    """The same calls, from a coroutine."""
    enqueue_sync(payloads)


async def defer(data: dict[str, Any], delay_seconds: float) -> None:
    """Schedule a job `delay_seconds` from now."""
    handle.schedule(args=(data,), delay=delay_seconds)


def worker_command(bin_dir: Path) -> list[str]:
    """The consumer process."""
    return [str(bin_dir / "huey_consumer"), "peer_huey.huey", "-w", "8", "-k", "thread"]
