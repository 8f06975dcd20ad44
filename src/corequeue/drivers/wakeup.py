"""Wakeup: wakes the pops waiting in this process when a job arrives, whatever their loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Wakeup:
    """Wakes `pop()` calls waiting in this process when a job arrives, on any event loop.

    Bound to no loop, so one driver may serve pushes from other threads (`dispatch_sync`) and
    pops on any number of event loops at once.
    """

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._lock = threading.Lock()

    async def wait(self, timeout_seconds: float) -> None:
        """Return when `notify()` is called or after `timeout_seconds`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout_seconds)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def notify(self) -> None:
        """Wake every waiter."""
        with self._lock:
            waiters = list(self._waiters)
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits any more
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
