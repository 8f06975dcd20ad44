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

_Waiting = tuple[PersistedJob, timedelta, "asyncio.Future[None]"]


@dataclass(slots=True)
class _LoopState:
    busy: bool = False
    pending: list[_Waiting] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None


class PushCoalescer:
    """Pushes jobs through `driver`, batching those that arrive while a push is in flight.

    One state per event loop, so a queue used from several loops keeps them apart: futures
    and connections belong to the loop that made them.
    """

    def __init__(self, driver: Driver, max_batch: int = MAX_BATCH) -> None:
        self._driver = driver
        self._max_batch = max_batch
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def push(self, job: PersistedJob, delay: timedelta) -> Awaitable[None]:
        """Store `job`: await the result to return once the store has it (or raise what the
        store raised). Call it from the event loop whose store call it joins.

        While a push is in flight, the job joins the next batch and the awaitable is its
        future (no coroutine of its own: a burst of dispatches allocates less).
        """
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        if state.busy:
            waiter: asyncio.Future[None] = loop.create_future()
            state.pending.append((job, delay, waiter))
            return waiter
        return self._push_alone(loop, state, job, delay)

    async def _push_alone(
        self,
        loop: asyncio.AbstractEventLoop,
        state: _LoopState,
        job: PersistedJob,
        delay: timedelta,
    ) -> None:
        state.busy = True  # here, not in push(): a coroutine never awaited leaves it as it was
        try:
            await self._driver.push(job, delay)
        finally:
            if state.pending:
                state.flusher = loop.create_task(self._flush(state), name="corequeue pushes")
            else:
                state.busy = False

    async def _flush(self, state: _LoopState) -> None:
        try:
            while state.pending:
                batch = [entry for entry in state.pending[: self._max_batch] if not entry[2].done()]
                del state.pending[: self._max_batch]
                if batch:
                    await self._push_batch(batch)
        finally:
            for _, _, waiter in state.pending:  # only when the flusher itself was cancelled
                waiter.cancel()
            state.pending.clear()
            state.busy = False
            state.flusher = None

    async def _push_batch(self, batch: list[_Waiting]) -> None:
        try:
            await self._driver.push_many([(job, delay) for job, delay, _ in batch])
        except asyncio.CancelledError:
            for _, _, waiter in batch:
                waiter.cancel()
            raise
        except BaseException as exc:
            for _, _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for _, _, waiter in batch:
            if not waiter.done():
                waiter.set_result(None)
