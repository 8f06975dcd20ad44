"""Dramatiq on its Redis broker: one worker process with 8 threads (its usual set-up)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from recorder import hit, io_sync

WORKER = "1 process, 8 threads"

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])
dramatiq.set_broker(broker)


def _handle(data: dict[str, Any]) -> None:
    if data.get("io"):
        io_sync()
    hit(data)


handle = dramatiq.actor(_handle, actor_name="handle", max_retries=0)


def enqueue_sync(payloads: list[dict[str, Any]]) -> None:
    """One send per job, from plain synchronous code."""
    for data in payloads:
        handle.send(data)


async def enqueue(payloads: list[dict[str, Any]]) -> None:
    """The same calls, from a coroutine."""
    enqueue_sync(payloads)


async def defer(data: dict[str, Any], delay_seconds: float) -> None:
    """Send a job delayed by `delay_seconds`."""
    handle.send_with_options(args=(data,), delay=int(delay_seconds * 1000))


def worker_command(bin_dir: Path) -> list[str]:
    """The worker process."""
    return [str(bin_dir / "dramatiq"), "peer_dramatiq", "--processes", "1", "--threads", "8"]
