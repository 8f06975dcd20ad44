"""PushCoalescer: concurrent dispatches from one event loop share round trips to the store.

A dispatch made while none is in flight goes to the store at once, alone: a caller dispatching
one job at a time pays nothing extra. Dispatches made while one is in flight wait and then go
together, in order, as one `push_many` per batch (one Lua script, one SQL statement or
transaction): a burst of thousands of `await queue.dispatch(...)` from a busy ASGI app becomes a
few round trips instead of thousands of connections, so it never meets a connection-pool limit.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta

from corequeue.drivers.base import Driver
from corequeue.job import PersistedJob

MAX_BATCH = 1000
"""Most jobs one coalesced `push_many` carries."""

Pushed = tuple[PersistedJob, timedelta]
"""A job and its delay, as `Queue.persist` returns them and `Driver.push_many` takes them."""


@dataclass(slots=True)
class _LoopState:
    busy: bool = False
    jobs: list[Pushed] = field(default_factory=list)  # waiting for the next batch, in order,
    waiters: list[asyncio.Future[None]] = field(default_factory=list)  # beside their futures
    flusher: asyncio.Task[None] | None = None


class PushCoalescer:
    """Pushes jobs through `driver`, batching those that arrive while a push is in flight.

    One state per event loop, so a queue used from several loops keeps them apart: futures
    and connections belong to the loop that made them. A waiting job costs its future and a
    place in two lists: a burst of thousands allocates (and makes the garbage collector walk)
    no more than it must.
    """

    def __init__(self, driver: Driver, max_batch: int = MAX_BATCH) -> None:
        self._driver = driver
        self._max_batch = max_batch
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def push(self, pushed: Pushed) -> Awaitable[None]:
        """Store the job of `pushed` (a job and its delay): await the result to return once the
        store has it (or raise what the store raised). Call it from the event loop whose store
        call it joins.

        While a push is in flight, the job joins the next batch and the awaitable is its
        future (no coroutine of its own).
        """
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        if state.busy:
            waiter: asyncio.Future[None] = loop.create_future()
            state.jobs.append(pushed)
            state.waiters.append(waiter)
            return waiter
        return self._push_alone(loop, state, pushed)

    async def _push_alone(
        self, loop: asyncio.AbstractEventLoop, state: _LoopState, pushed: Pushed
    ) -> None:
        state.busy = True  # here, not in push(): a coroutine never awaited leaves it as it was
        try:
            await self._driver.push(*pushed)
        finally:
            if state.jobs:
                state.flusher = loop.create_task(self._flush(state), name="corequeue pushes")
            else:
                state.busy = False

    async def _flush(self, state: _LoopState) -> None:
        try:
            while state.jobs:
                size = self._max_batch
                jobs, waiters = state.jobs[:size], state.waiters[:size]
                del state.jobs[:size], state.waiters[:size]
                if any(waiter.done() for waiter in waiters):  # cancelled while waiting
                    kept = [n for n, waiter in enumerate(waiters) if not waiter.done()]
                    jobs, waiters = [jobs[n] for n in kept], [waiters[n] for n in kept]
                if jobs:
                    await self._push_batch(jobs, waiters)
        finally:
            for waiter in state.waiters:  # only when the flusher itself was cancelled
                waiter.cancel()
            state.jobs.clear()
            state.waiters.clear()
            state.busy = False
            state.flusher = None

    async def _push_batch(self, jobs: list[Pushed], waiters: list[asyncio.Future[None]]) -> None:
        try:
            await self._driver.push_many(jobs)
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.cancel()
            raise
        except BaseException as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
