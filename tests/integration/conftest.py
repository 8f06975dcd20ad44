"""Fixtures for end-to-end tests: a fresh driver of every kind on the wall clock, and a runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from corequeue.drivers.base import Driver
from corequeue.queue import Queue
from tests.support.clocks import WallClock
from tests.support.drivers import all_factories

FACTORIES = all_factories()


@pytest.fixture(params=sorted(FACTORIES))
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Driver]:
    async with FACTORIES[request.param](WallClock(), tmp_path) as fresh:
        yield fresh


@asynccontextmanager
async def consuming(queue: Queue) -> AsyncIterator[asyncio.Task[None]]:
    """Run `queue.consume()` in the background for the block, then stop it gracefully."""
    task = asyncio.create_task(queue.consume(handle_signals=False))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `check` until it is true; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.01)
