"""One timer for the handle timeouts of many job tasks."""

from __future__ import annotations

import asyncio

import pytest

from corequeue.deadlines import Deadline, Deadlines


async def watched(deadlines: Deadlines, seconds: float, work: asyncio.Event) -> Deadline:
    task = asyncio.current_task()
    assert task is not None
    deadline = deadlines.watch(task, seconds)
    try:
        await work.wait()
    except asyncio.CancelledError:
        task.uncancel()
    finally:
        deadlines.finish(deadline)
    return deadline


async def test_a_task_past_its_deadline_is_cancelled_and_marked_expired() -> None:
    deadlines = Deadlines()

    deadline = await asyncio.wait_for(watched(deadlines, 0.01, asyncio.Event()), 5)

    assert deadline.expired
    deadlines.close()


async def test_a_finished_task_is_never_cancelled() -> None:
    deadlines = Deadlines()
    done = asyncio.Event()
    done.set()

    deadline = await watched(deadlines, 0.01, done)
    later = await asyncio.wait_for(watched(deadlines, 0.02, asyncio.Event()), 5)

    assert later.expired
    assert not deadline.expired
    deadlines.close()


async def test_the_earliest_deadline_expires_first_whatever_the_order_of_watching() -> None:
    deadlines = Deadlines()
    never = asyncio.Event()
    slow = asyncio.create_task(watched(deadlines, 30, never))
    fast = asyncio.create_task(watched(deadlines, 0.01, never))

    assert (await asyncio.wait_for(fast, 5)).expired
    assert not slow.done()
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
    deadlines.close()


@pytest.mark.parametrize("jobs", [1000])
async def test_finished_deadlines_do_not_pile_up(jobs: int) -> None:
    deadlines = Deadlines()
    done = asyncio.Event()
    done.set()

    for _ in range(jobs):
        await watched(deadlines, 3600, done)

    assert len(deadlines._heap) <= 130
    deadlines.close()
