"""Pruning finished jobs: `completed` after their `keep_result`, `failed`/`timeout` after the
queue's `failed_retention`.

Every consumer prunes as it goes, in small steps (at most PRUNE_BATCH jobs per store call), on
the rhythm of its lease renewals: no extra process, and no step long enough to hold up the store.
Workers of one queue may prune at once; each job is deleted once, by whichever comes first.
"""

from __future__ import annotations

from datetime import timedelta

from corequeue.drivers.base import Driver
from corequeue.guard import Logger
from corequeue.loops import repeat

PRUNE_BATCH = 200
"""Most jobs one `Driver.prune` call deletes."""

STEPS_PER_ROUND = 5
"""Most `prune` calls in one round: a backlog shrinks over several rounds."""


class Pruner:
    """Deletes the queue's finished jobs past their retention, a bounded step at a time.

    Args:
        driver: The store.
        failed_retention: How long `failed` and `timeout` jobs are kept (None: until deleted
            by hand); `completed` ones go after their own `keep_result` in any case.
        name: The queue's name, for logs.
        log: Where to log.
    """

    def __init__(
        self, driver: Driver, failed_retention: timedelta | None, *, name: str, log: Logger
    ) -> None:
        self.driver = driver
        self.failed_retention = failed_retention
        self.name = name
        self.log = log
        # A driver of one's own may lack prune() or raise NotImplementedError from it; any
        # other error (an AttributeError inside a real prune included) is a failed round.
        self.supported = callable(getattr(driver, "prune", None))
        self._told = False

    async def prune_round(self) -> int:
        """Prune up to STEPS_PER_ROUND batches; return how many jobs went. Never raises.

        A driver without `prune` (one of one's own, say) is told of once, then left alone.
        """
        pruned = 0
        for _ in range(STEPS_PER_ROUND if self.supported else 0):
            try:
                count = await self.driver.prune(self.failed_retention, PRUNE_BATCH)
            except NotImplementedError:
                self.supported = False
                break
            except Exception as exc:
                self.log.warning("queue %s: cannot prune finished jobs: %s", self.name, exc)
                break
            pruned += count
            if count < PRUNE_BATCH:
                break
        if not self.supported and not self._told:
            self._told = True
            self.log.info(
                "queue %s: %s has no prune(): finished jobs stay until deleted by hand",
                self.name,
                type(self.driver).__name__,
            )
        return pruned

    async def run(self, every: timedelta) -> None:
        """Prune a round every `every` until cancelled."""
        await repeat(self.prune_round, every)
