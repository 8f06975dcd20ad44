"""Minimum: an InProcessDriver queue with a custom Job class; of two deferred jobs one runs.

Prints:
    foo
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import corequeue as cq


class ExampleJob(str):
    """A job that is its own payload, with a type name of its choosing."""

    @property
    def type(self) -> str:
        return "example"

    @property
    def data(self) -> ExampleJob:
        return self


class ExampleListener:
    def __init__(self) -> None:
        self.done = asyncio.Event()

    def listen(self) -> cq.Job:
        return ExampleJob("")

    async def process(self, job: cq.Job) -> None:
        print(job.data)
        self.done.set()


async def main() -> None:
    queue = cq.Queue(cq.InProcessDriver())
    listener = ExampleListener()
    consumer = asyncio.create_task(queue.consume())
    queue.subscribe(listener)

    await queue.dispatch(cq.adjust(ExampleJob("foo"), defer=timedelta(seconds=1)))
    await queue.dispatch(cq.adjust(ExampleJob("bar"), defer=timedelta(hours=1)))

    await listener.done.wait()
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
