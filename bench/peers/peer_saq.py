"""SAQ on Redis: one worker process, concurrency 50."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from recorder import hit, io_async
from saq import Queue

WORKER = "1 process, concurrency 50"

queue = Queue.from_url(os.environ["BENCH_REDIS_URL"], name="bench")


async def handle(ctx: dict[str, Any], *, data: dict[str, Any]) -> None:
    """The task: no-op, or one Redis call of its own for an I/O job."""
    if data.get("io"):
        await io_async()
    hit(data)


settings = {"queue": queue, "functions": [handle], "concurrency": 50}


async def enqueue(payloads: list[dict[str, Any]]) -> None:
    """One enqueue per job."""
    for data in payloads:
        await queue.enqueue("handle", data=data)


async def defer(data: dict[str, Any], delay_seconds: float) -> None:
    """Enqueue a job scheduled `delay_seconds` from now (SAQ takes epoch seconds)."""
    await queue.enqueue("handle", data=data, scheduled=time.time() + delay_seconds)


def worker_command(bin_dir: Path) -> list[str]:
    """The worker process."""
    return [str(bin_dir / "saq"), "peer_saq.settings", "--workers", "1", "--quiet"]
