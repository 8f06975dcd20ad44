"""Defer: of two jobs deferred by 1 second and by 1 hour, only the first runs within 2 seconds.

Uses the embedded SQLite driver in a scratch folder. Prints:
    hello world
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import corequeue as cq


@dataclass
class DeferMockData:
    value: str


class DeferMockListener:
    def listen(self) -> type[DeferMockData]:
        return DeferMockData

    async def process(self, job: cq.Job) -> None:
        print(job.data.value)


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        queue = cq.Queue(cq.SQLiteDriver(Path(folder) / "jobs.db"), parallelism=1)
        queue.subscribe(DeferMockListener())

        job = cq.job_from(DeferMockData(value="hello world"))
        await queue.dispatch(cq.adjust(job, defer=timedelta(seconds=1)))
        await queue.dispatch(cq.adjust(job, defer=timedelta(hours=1)))

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(queue.consume(), timeout=2)
        await queue.close()


if __name__ == "__main__":
    asyncio.run(main())
