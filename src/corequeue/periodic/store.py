"""The store's side of periodic jobs: advance a schedule's last slot and push its job, atomically.

`SlotStore` is the part of the Driver protocol the ticker uses (`Driver.enqueue_slot`,
`schedule_slots` and `forget_schedule` state the contract in full), so every driver is one: the
compare-and-advance of a schedule's last enqueued slot and the push of that slot's job happen in
one atomic step of the store, so across every worker sharing the store each slot's job is
enqueued exactly once. `MemorySlotStore` is the reference model the ticker's tests run against.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable

from corequeue.drivers.base import Clock
from corequeue.job import PersistedJob


@runtime_checkable
class SlotStore(Protocol):
    """The store's side of periodic jobs: each schedule's last enqueued slot, and its advance.

    Every Driver is one (the Driver protocol declares these methods with their full contract).
    """

    async def enqueue_slot(self, name: str, slot_ms: int, job: PersistedJob) -> bool:
        """Enqueue the job of schedule `name`'s slot `slot_ms`, unless that slot already was.

        In one atomic step: if `slot_ms` is not in the future on the store's clock and the
        stored last slot of `name` is absent or less than `slot_ms`, store `slot_ms` as its
        last slot and push `job` (due at once, like a push with no delay, and with the same
        rule for an id that is already pending); otherwise change nothing. See
        `Driver.enqueue_slot`.

        Returns:
            Whether this call advanced the slot and pushed the job.
        """
        ...

    async def schedule_slots(self) -> dict[str, int]:
        """Return the last enqueued slot (epoch milliseconds) of every schedule the store knows."""
        ...

    async def forget_schedule(self, name: str) -> bool:
        """Delete the stored last slot of schedule `name`; return whether there was one."""
        ...


class Pusher(Protocol):
    """Anything with a driver's `push` (every Driver is one)."""

    async def push(self, job: PersistedJob, delay: timedelta) -> None:
        """Put `job` in `waiting`, or in `delayed` until `delay` has passed."""
        ...


class MemorySlotStore:
    """A `SlotStore` kept in this process's memory, pushing through any driver: for tests only.

    The compare-and-advance is atomic among the tasks of one event loop (no await comes
    between the comparison and the advance), which is what tests of several tickers in one
    process need. It is not atomic across processes, and the slots are lost when the process
    ends: a real store keeps both in the same transaction or script as the push.

    Args:
        driver: Where the slots' jobs are pushed.
        clock: The store's clock, when a slot in its future should be refused as a driver
            refuses it; None accepts any slot (the ticker never asks for one early).

    Example:
        >>> import asyncio
        >>> class Recorder:
        ...     def __init__(self) -> None:
        ...         self.ids: list[str] = []
        ...     async def push(self, job: PersistedJob, delay: timedelta) -> None:
        ...         self.ids.append(job.id)
        >>> store = MemorySlotStore(Recorder())
        >>> job = PersistedJob(id="periodic:a:1000", type="t", value=b"{}")
        >>> asyncio.run(store.enqueue_slot("a", 1000, job)), asyncio.run(store.schedule_slots())
        (True, {'a': 1000})
        >>> asyncio.run(store.enqueue_slot("a", 1000, job))
        False
    """

    def __init__(self, driver: Pusher, clock: Clock | None = None) -> None:
        self._driver = driver
        self._clock = clock
        self._last: dict[str, int] = {}

    async def enqueue_slot(self, name: str, slot_ms: int, job: PersistedJob) -> bool:
        """Advance `name` to `slot_ms` and push `job` if `slot_ms` is later than its last slot.

        If the push fails, the advance is undone (unless a later slot was taken meanwhile),
        as a store's transaction would roll back.
        """
        if self._clock is not None and slot_ms * 1_000 > self._clock.now_us():
            return False
        previous = self._last.get(name)
        if previous is not None and previous >= slot_ms:
            return False
        self._last[name] = slot_ms
        try:
            await self._driver.push(job, timedelta(0))
        except BaseException:
            if self._last.get(name) == slot_ms:
                self._restore(name, previous)
            raise
        return True

    async def schedule_slots(self) -> dict[str, int]:
        """Return the last enqueued slot of every schedule, by name."""
        return dict(self._last)

    async def forget_schedule(self, name: str) -> bool:
        """Delete the last slot of `name`; return whether there was one."""
        return self._last.pop(name, None) is not None

    def _restore(self, name: str, previous: int | None) -> None:
        if previous is None:
            del self._last[name]
        else:
            self._last[name] = previous
