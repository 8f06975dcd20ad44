"""BatchFromSingle: the Driver's batch methods, derived from its single-job ones.

A driver of your own implements push, pop, ack and renew for one job and inherits the batch
forms; the corequeue drivers override them with one round trip per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from corequeue.job import PersistedJob


class BatchFromSingle:
    """Mixin giving `push_many`, `pop_many`, `ack_many` and `renew_many` from single calls.

    Example:
        >>> class MyDriver(BatchFromSingle):  # doctest: +SKIP
        ...     async def push(self, job, delay, **options): ...
        ...     async def pop(self): ...
        ...     async def ack(self, job): ...
        ...     async def renew(self, job): ...
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

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve one job (a batch of one satisfies "up to `limit`, at least one")."""
        return [await self.pop()]

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Ack every job, one call each; return the stale ones."""
        return [job for job in jobs if not await self.ack(job)]

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Renew every lease, one call each; return the jobs whose lease is lost."""
        return [job for job in jobs if not await self.renew(job)]
