"""Taskiq with taskiq-redis: one worker process (ListQueueBroker) plus its scheduler process
for deferred jobs (a ListRedisScheduleSource)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recorder import hit, io_async
from taskiq import TaskiqScheduler
from taskiq_redis import ListQueueBroker, ListRedisScheduleSource

WORKER = "1 worker process + scheduler, update-interval 1 s"

broker = ListQueueBroker(os.environ["BENCH_REDIS_URL"])
source = ListRedisScheduleSource(os.environ["BENCH_REDIS_URL"])
scheduler = TaskiqScheduler(broker, [source])


async def _handle(data: dict[str, Any]) -> None:
    if data.get("io"):
        await io_async()
    hit(data)


handle = broker.register_task(_handle, task_name="handle")
_started: list[bool] = []


async def _startup() -> None:
    if not _started:
        await broker.startup()
        _started.append(True)


async def enqueue(payloads: list[dict[str, Any]]) -> None:
    """One kiq per job."""
    await _startup()
    for data in payloads:
        await handle.kiq(data)


async def defer(data: dict[str, Any], delay_seconds: float) -> None:
    """Schedule a job at a time `delay_seconds` from now, through the schedule source."""
    await _startup()
    when = datetime.now(UTC) + timedelta(seconds=delay_seconds)
    await handle.schedule_by_time(source, when, data)


def worker_command(bin_dir: Path) -> list[str]:
    """The worker process and the scheduler process, stopped together."""
    taskiq = bin_dir / "taskiq"
    script = (
        f"{taskiq} scheduler peer_taskiq:scheduler --update-interval 1 --log-level WARNING & "
        f"exec {taskiq} worker peer_taskiq:broker --workers 1 --log-level WARNING"
    )
    return ["sh", "-c", script]
