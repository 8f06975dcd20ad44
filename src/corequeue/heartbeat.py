"""Worker heartbeats: each consumer says it is alive once per renewal period.

A consumer records a `WorkerInfo` (its id, host, pid, start and how many jobs it runs) in the
store every third of a lease, on the store's clock; `Queue.workers()` lists those that beat
within a lease (three periods), so a worker killed without a word drops off by itself. A
consumer that stops cleanly deletes its record. Store errors are logged, never raised.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from corequeue.drivers.base import Driver, WorkerInfo
from corequeue.guard import Logger


class Heartbeat:
    """Beats for one consumer run.

    Args:
        driver: The store.
        running: Returns how many jobs the consumer runs now.
        name: The queue's name, for logs.
        log: Where to log.
    """

    def __init__(
        self, driver: Driver, running: Callable[[], int], *, name: str, log: Logger
    ) -> None:
        self.driver = driver
        self.running = running
        self.name = name
        self.log = log
        hostname, pid = socket.gethostname(), os.getpid()
        started = datetime.now(UTC)
        self.worker = WorkerInfo(
            f"{hostname}:{pid}:{os.urandom(4).hex()}", hostname, pid, started, started
        )

    async def beat(self) -> None:
        """Record one heartbeat; log (and swallow) a store error."""
        worker = WorkerInfo(
            self.worker.id,
            self.worker.hostname,
            self.worker.pid,
            self.worker.started_at,
            datetime.now(UTC),
            self.running(),
        )
        try:
            await self.driver.beat(worker)
        except Exception as exc:
            self.log.warning("queue %s: cannot record the worker heartbeat: %s", self.name, exc)

    async def run(self, every: timedelta) -> None:
        """Beat every `every` until cancelled."""
        while True:
            await self.beat()
            await asyncio.sleep(every.total_seconds())

    async def leave(self) -> None:
        """Delete this worker's record (a clean stop); log a store error."""
        try:
            await self.driver.forget_worker(self.worker.id)
        except Exception as exc:
            self.log.warning("queue %s: cannot remove the worker record: %s", self.name, exc)
