"""The loop of a worker's periodic side tasks (heartbeat, retention): a step, then a pause."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta


async def repeat(step: Callable[[], Awaitable[object]], every: timedelta) -> None:
    """Run `step`, then sleep `every`, until the task is cancelled.

    A cancel that arrives while a store client is mid-call may be absorbed by that client
    (redis-py can swallow one while it drops the connection); the task's pending cancel
    request is checked after each step, so the loop still ends instead of sleeping on.
    """
    while True:
        await step()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(every.total_seconds())
