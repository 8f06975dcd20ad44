"""BatchFromSingle: the Driver's batch and synchronous methods, derived from its single-job ones.

A driver of your own implements push, pop, ack and renew for one job and inherits the batch
forms and `push_sync`; the corequeue drivers override them with one round trip per batch and a
synchronous client of their own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from corequeue.job import PersistedJob

T = TypeVar("T")


class BatchFromSingle:
    """Mixin giving `push_many`, `pop_many`, `ack_many`, `renew_many` and `push_sync`.

    `push_sync` runs the async `push` on a private event loop in a daemon thread, started on
    first use and shared by every calling thread: connections the driver opens there belong to
    that loop. `close()` stops it; a driver that defines its own `close()` calls
    `await super().close()` last, once its own connections are closed.

    Example:
        >>> class MyDriver(BatchFromSingle):  # doctest: +SKIP
        ...     async def push(self, job, delay, **options): ...
        ...     async def pop(self): ...
        ...     async def ack(self, job): ...
        ...     async def renew(self, job): ...
        ...     async def close(self):
        ...         await self.client.close()
        ...         await super().close()
    """

    async def push(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        raise NotImplementedError

    async def pop(self) -> PersistedJob:
        raise NotImplementedError

    async def ack(self, job: PersistedJob) -> bool:
        raise NotImplementedError

    async def renew(self, job: PersistedJob) -> bool:
        raise NotImplementedError

    async def push_many(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], **options: Any
    ) -> None:
        """Push every `(job, delay)` pair, one call each."""
        for job, delay in jobs:
            await self.push(job, delay, **options)

    def push_sync(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Push from synchronous code, on any thread: `push` run on the driver's private loop."""
        _private_loop(self).run(self.push(job, delay, **options))

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve one job (a batch of one satisfies "up to `limit`, at least one")."""
        return [await self.pop()]

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Ack every job, one call each; return the stale ones."""
        return [job for job in jobs if not await self.ack(job)]

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Renew every lease, one call each; return the jobs whose lease is lost."""
        return [job for job in jobs if not await self.renew(job)]

    async def close(self) -> None:
        """Stop the private loop of `push_sync`, if it was started."""
        holder = vars(self).get(_LOOP_ATTRIBUTE)
        if holder is not None:
            await asyncio.to_thread(holder.stop)  # joins a thread: not on the event loop


class LoopThread:
    """An event loop in a daemon thread, started on first use, running coroutines for sync code.

    Thread-safe: any number of threads may call `run()` at once; their coroutines share the
    one loop (and the connections opened on it).

    Args:
        name: The thread's name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the loop and return its result (or raise its error)."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name=self._name, daemon=True
                )
                self._thread.start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(work, loop).result()

    def stop(self) -> None:
        """Stop the loop and its thread; a later `run()` starts them again."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        # Cancel what still runs, so a caller blocked in `run()` gets CancelledError, not a wait
        # for ever on a task of a closed loop.
        asyncio.run_coroutine_threadsafe(_cancel_others(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


async def _cancel_others() -> None:
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


_LOOP_ATTRIBUTE = "_corequeue_push_sync_loop"


def _private_loop(driver: object) -> LoopThread:
    """Return the driver's private loop, creating it once even when threads race to it."""
    # dict.setdefault is atomic: racing threads all get the one LoopThread stored first.
    created = LoopThread(f"corequeue-sync-{type(driver).__name__}")
    holder: LoopThread = vars(driver).setdefault(_LOOP_ATTRIBUTE, created)
    return holder
