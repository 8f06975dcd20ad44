"""Factory: a QueueFactory makes the queue `myQueue` of a configuration; its job prints a line.

The configuration is the Go example's JSON, unchanged (JSON is YAML too), written to a file in a
scratch folder so that both queues keep their jobs in SQLite files there. Prints:
    hello world
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import corequeue as cq
from corequeue.config import load_config
from corequeue.factory import App, QueueFactory

SAMPLE_CONFIG = (
    '{"log":{"level":"error"},"queue":{"default":{"parallelism":2},"myQueue":{"parallelism":1}}}'
)


@dataclass
class MockFactoryData:
    value: str


class MockFactoryListener:
    def __init__(self) -> None:
        self.done = asyncio.Event()

    def listen(self) -> type[MockFactoryData]:
        return MockFactoryData

    async def process(self, job: cq.Job) -> None:
        print(job.data.value)
        self.done.set()


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        config_file = Path(folder) / "corequeue.yaml"
        config_file.write_text(SAMPLE_CONFIG)
        factory = QueueFactory(load_config(config_file), prometheus=False)

        queue = factory.make("myQueue")
        listener = MockFactoryListener()
        queue.subscribe(listener)
        await queue.dispatch(cq.job_from(MockFactoryData(value="hello world")))

        async with App(factory):  # consumes default and myQueue until the block ends
            await listener.done.wait()


if __name__ == "__main__":
    asyncio.run(main())
