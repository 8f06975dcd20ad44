"""Worker heartbeats: each consumer says it is alive, and what it finished, once per renewal
period.

A consumer records a `WorkerInfo` (its id, host, pid, start and how many jobs it runs) in the
store every third of a lease, on the store's clock; `Queue.workers()` lists those that beat
within a lease (three periods), so a worker killed without a word drops off by itself. A
consumer that stops cleanly deletes its record. With each beat it adds the attempts it
finished since the last one to the store's per-interval throughput counters, so the dashboard
charts the whole fleet wherever it runs. Store errors are logged, never raised (counts that
could not be written are kept for the next beat).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from corequeue.drivers.base import Driver, WorkerInfo
from corequeue.guard import Logger
from corequeue.loops import repeat
from corequeue.metrics import Outcome


class Tally:
    """Attempts finished since the last flush, by outcome (one event loop: no lock)."""

    def __init__(self) -> None:
        self.counts: dict[Outcome, int] = {"processed": 0, "retried": 0, "failed": 0}

    def add(self, outcome: Outcome) -> None:
        """Count one finished attempt."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def take(self) -> tuple[int, int, int]:
        """Return processed, retried and failed so far, and start again from zero."""
        counts = self.counts
        self.counts = {"processed": 0, "retried": 0, "failed": 0}
        return counts["processed"], counts["retried"], counts["failed"]

    def give_back(self, processed: int, retried: int, failed: int) -> None:
        """Add counts that could not be written back, for the next flush."""
        for outcome, count in zip(
            ("processed", "retried", "failed"), (processed, retried, failed), strict=True
        ):
            self.counts[outcome] += count  # type: ignore[index]


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
        self.tally = Tally()
        # Driver methods a driver of one's own lacks (or answers with NotImplementedError):
        # told of once, then not called again. Any other error is a failed beat, retried.
        self.unsupported: set[str] = set()
        for method in ("beat", "count_finished"):
            if not callable(getattr(driver, method, None)):
                self._lacks(method)

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
        if "beat" not in self.unsupported:
            try:
                await self.driver.beat(worker)
            except NotImplementedError:
                self._lacks("beat")
            except Exception as exc:
                self.log.warning("queue %s: cannot record the worker heartbeat: %s", self.name, exc)
        await self.flush()

    def _lacks(self, method: str) -> None:
        """Note (and log once) that the driver has no `method`: it is not called again."""
        self.unsupported.add(method)
        self.log.info(
            "queue %s: %s has no %s(): %s",
            self.name,
            type(self.driver).__name__,
            method,
            "the worker is not listed" if method == "beat" else "throughput is not recorded",
        )

    async def flush(self) -> None:
        """Add the attempts finished since the last flush to the store's counters."""
        if "count_finished" in self.unsupported:
            return
        counts = self.tally.take()
        if not any(counts):
            return
        try:
            await self.driver.count_finished(*counts)
        except NotImplementedError:
            self._lacks("count_finished")
        except Exception as exc:
            self.tally.give_back(*counts)
            self.log.warning("queue %s: cannot record throughput: %s", self.name, exc)

    async def run(self, every: timedelta) -> None:
        """Beat every `every` until cancelled."""
        await repeat(self.beat, every)

    async def leave(self) -> None:
        """Write the last counts and delete this worker's record (a clean stop)."""
        await self.flush()
        if "beat" in self.unsupported:
            return
        try:
            await self.driver.forget_worker(self.worker.id)
        except Exception as exc:
            self.log.warning("queue %s: cannot remove the worker record: %s", self.name, exc)
