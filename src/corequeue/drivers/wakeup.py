"""Bell: wakes the pops waiting in this process when a job arrives, whatever their loop.

Bound to no loop and thread-safe, so one driver may serve pushes from other threads
(`dispatch_sync`) and pops on any number of event loops at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Bell:
    """Wakes the pops of one driver on any event loop, losing no ring between a look and a wait.

    A pop reads `rings` before it looks for jobs and passes it to `wait()`: a ring that comes
    while it looks makes the wait return at once.
    """

    def __init__(self) -> None:
        self._rings = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._lock = threading.Lock()

    @property
    def rings(self) -> int:
        """How many times the bell has rung."""
        with self._lock:
            return self._rings

    def ring(self) -> None:
        """Wake every waiter."""
        with self._lock:
            self._rings += 1
            waiters = list(self._waiters)
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody to wake
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    async def wait(self, seen: int, timeout_seconds: float) -> None:
        """Return when the bell rings, at once if it rang since `seen`, or after the timeout."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._rings != seen:
                return
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout_seconds)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
