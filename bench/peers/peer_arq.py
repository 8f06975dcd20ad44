"""arq: one worker process with its default settings (max_jobs 10)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings
from recorder import hit, io_async

WORKER = "1 process, max_jobs 10"

redis_settings = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])
_pool: list[Any] = []


async def handle(ctx: dict[str, Any], data: dict[str, Any]) -> None:
    """The task: no-op, or one Redis call of its own for an I/O job."""
    if data.get("io"):
        await io_async()
    hit(data)


class WorkerSettings:
    """What `arq peer_arq.WorkerSettings` runs."""

    functions: ClassVar[list[Any]] = [handle]
    redis_settings = redis_settings


async def _redis() -> Any:
    if not _pool:
        _pool.append(await create_pool(redis_settings))
    return _pool[0]


async def enqueue(payloads: list[dict[str, Any]]) -> None:
    """One enqueue_job per job."""
    redis = await _redis()
    for data in payloads:
        await redis.enqueue_job("handle", data)


async def defer(data: dict[str, Any], delay_seconds: float) -> None:
    """Enqueue a job deferred by `delay_seconds`."""
    redis = await _redis()
    await redis.enqueue_job("handle", data, _defer_by=timedelta(seconds=delay_seconds))


def worker_command(bin_dir: Path) -> list[str]:
    """The worker process."""
    return [str(bin_dir / "arq"), "peer_arq.WorkerSettings"]
