"""Faulty: a listener fails twice, then succeeds; with max_attempts=3 the job gets there.

Retries wait a randomized, growing backoff (about 1 s, then about 2 s). Prints:
    faulty
    faulty
    hello world
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import corequeue as cq


@dataclass
class FaultyMockData:
    value: str


class FaultyMockListener:
    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()

    def listen(self) -> type[FaultyMockData]:
        return FaultyMockData

    async def process(self, job: cq.Job) -> None:
        if self.count < 2:
            print("faulty")
            self.count += 1
            raise RuntimeError("faulty")
        print(job.data.value)
        self.done.set()


async def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)  # the retries are expected: keep them quiet
    with tempfile.TemporaryDirectory() as folder:
        queue = cq.Queue(cq.SQLiteDriver(Path(folder) / "jobs.db"), parallelism=1)
        listener = FaultyMockListener()
        queue.subscribe(listener)

        await queue.dispatch(cq.adjust(FaultyMockData(value="hello world"), max_attempts=3))

        consumer = asyncio.create_task(queue.consume())
        await asyncio.wait_for(listener.done.wait(), timeout=30)
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await queue.close()


if __name__ == "__main__":
    asyncio.run(main())
