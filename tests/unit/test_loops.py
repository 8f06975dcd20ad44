"""A periodic side task ends when cancelled, even if its step swallowed the cancel."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from corequeue.loops import repeat


async def test_a_cancel_swallowed_inside_a_step_still_ends_the_loop() -> None:
    entered = asyncio.Event()

    async def step() -> None:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # as a store client may do
            await asyncio.sleep(10)

    task = asyncio.create_task(repeat(step, timedelta(hours=1)))
    await entered.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
