"""Measure the Redis server's time per job spent in corequeue's scripts, phase by phase.

Pushes `--jobs` jobs in batches, pops them in batches, renews and acks them, and reads the
server's `INFO commandstats` (EVALSHA calls and microseconds) around each phase, and this
process's CPU time (the client's side of the same work): the server's figure is
what one job costs the Redis thread, which bounds the drain rate of every worker sharing that
server. Uses a queue of its own (deleted afterwards); resets the server's statistics
(CONFIG RESETSTAT), so run it on a scratch server. Not a test: figures depend on the machine.

    COREQUEUE_TEST_REDIS_URL=redis://127.0.0.1:16379/0 \\
        .venv/bin/python bench/redis_script_cost.py [--jobs 20000] [--batch 100] [--keep-results]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from redis.asyncio import Redis

from corequeue.drivers.base import Channel, QueueInfo
from corequeue.drivers.redis import RedisDriver
from corequeue.job import PersistedJob

NOW = timedelta(0)
PAYLOAD = b'{"to":"a@example.com","subject":"hello"}'
RESULT = b'{"sent":true,"message_id":"0f3c9a"}'


async def script_stats(client: Redis) -> tuple[int, int]:
    """Return (calls, microseconds) of EVALSHA since the last reset."""
    stats = await client.info("commandstats")
    entry = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return int(entry["calls"]), int(entry["usec"])


async def measure(client: Redis, phase: Callable[[], Awaitable[None]]) -> tuple[int, int, float]:
    """Run `phase` with fresh statistics; return its EVALSHA (calls, microseconds) and the
    seconds of this process's CPU it took."""
    await client.config_resetstat()
    started = time.process_time()
    await phase()
    cpu = time.process_time() - started
    return (*await script_stats(client), cpu)


class Phases:
    """The four steps of a job's life, each over every job in batches."""

    def __init__(
        self, driver: RedisDriver, jobs: int, batch: int, keep: timedelta | None = None
    ) -> None:
        self.driver, self.jobs, self.batch, self.keep = driver, jobs, batch, keep
        self.popped: list[PersistedJob] = []

    def slices(self) -> range:
        """Return the first index of every batch."""
        return range(0, self.jobs, self.batch)

    async def push(self) -> None:
        """Push every job, due now."""
        for first in self.slices():
            last = min(first + self.batch, self.jobs)
            await self.driver.push_many(
                [
                    (PersistedJob(id=f"{n:032x}", type="app.SendEmail", value=PAYLOAD), NOW)
                    for n in range(first, last)
                ]
            )

    async def pop(self) -> None:
        """Reserve every job."""
        while len(self.popped) < self.jobs:
            self.popped.extend(await self.driver.pop_many(self.batch))

    async def renew(self) -> None:
        """Extend every lease once."""
        for first in self.slices():
            await self.driver.renew_many(self.popped[first : first + self.batch])

    async def ack(self) -> None:
        """Acknowledge every job (keeping a small result when `keep` is set)."""
        if self.keep is not None:
            for job in self.popped:
                job.keep_result, job.result = self.keep, RESULT
        for first in self.slices():
            await self.driver.ack_many(self.popped[first : first + self.batch])


async def main(arguments: argparse.Namespace) -> None:
    """Run the phases on a scratch queue and print one row per phase."""
    url = os.environ.get("COREQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    driver = RedisDriver.from_url(url, name=f"bench-{uuid.uuid4().hex[:8]}")
    client = Redis.from_url(url)
    jobs = arguments.jobs
    keep = timedelta(hours=1) if arguments.keep_results else None
    phases = Phases(driver, jobs, arguments.batch, keep)
    try:
        print(f"{jobs:,} jobs, batches of {arguments.batch}; Redis server time in the scripts")
        print(f"{'phase':<10} {'calls':>8} {'µs/job':>8} {'µs/call':>8} {'client µs/job':>14}")
        steps = [("push", phases.push), ("pop", phases.pop), ("renew", phases.renew)]
        for name, phase in [*steps, ("ack", phases.ack)]:
            calls, usec, cpu = await measure(client, phase)
            per_call = usec / max(calls, 1)
            client_us = cpu * 1e6 / jobs
            print(f"{name:<10} {calls:>8} {usec / jobs:>8.2f} {per_call:>8.1f} {client_us:>14.1f}")
        left = QueueInfo(completed=jobs) if keep else QueueInfo()
        assert await driver.info() == left, "jobs left behind"
    finally:
        for channel in Channel:
            await driver.flush(channel)
        await client.delete(*driver.keys.all())
        await client.aclose()
        await driver.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--keep-results", action="store_true", help="ack keeping a result")
    asyncio.run(main(parser.parse_args()))
