"""The Queue over Redis end to end: worker processes racing, and a redis-server restart.

Workers are real processes running this module (`python -m tests.integration.test_redis_queue
...`); each prints `done <job id>` when its listener has run a job, and the test reads those
lines as the ledger of who ran what.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis

import corequeue as cq
from corequeue.drivers.base import QueueInfo
from corequeue.drivers.redis import RedisDriver
from corequeue.testing import FakeClock
from tests.support.driver_redis import (
    die_with_parent,
    poll,
    raw_client,
    redis_url,
    restart_redis,
    unique_queue_name,
    wipe,
)
from tests.support.worker_processes import (
    GUARD_SECONDS,
    Ledger,
    WorkerOptions,
    consume_printing,
    read_ledger,
    stop,
    worker_parser,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Record:
    """The payload workers run: its listener only reports that it ran."""

    __job_type__ = "tests.integration.redis.Record"  # the same in workers run as __main__
    n: int


# --- the worker process -------------------------------------------------------------------


async def work(arguments: argparse.Namespace) -> None:
    """Consume queue `arguments.name` until SIGTERM, printing `done <id>` per job run."""
    driver = RedisDriver.from_url(
        arguments.url,
        name=arguments.name,
        lease=timedelta(seconds=arguments.lease_seconds),
        client_name=arguments.client_name,
    )
    await consume_printing(driver, Record, arguments)


def parse_worker_arguments(argv: list[str]) -> argparse.Namespace:
    """Read a worker's command line."""
    parser = worker_parser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--client-name", required=True)
    return parser.parse_args(argv)


# --- harness ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_workers(
    name: str, ledger: Ledger, tags: str, options: WorkerOptions
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Run one worker process per tag until the block ends, then stop them all with SIGTERM.

    Yields once every worker waits in a blocking pop, so all are consuming.
    """
    processes: list[asyncio.subprocess.Process] = []
    readers: list[asyncio.Task[None]] = []
    try:
        for tag in tags:
            process = await start_worker(name, f"cq-worker-{name}-{tag}", options)
            processes.append(process)
            readers.append(asyncio.create_task(read_ledger(process, tag, ledger)))
        async with raw_client(redis_url()) as client:
            assert isinstance(client, Redis)
            prefix = f"cq-worker-{name}-"
            await poll(lambda: _blocked_workers(client, prefix, len(tags)), GUARD_SECONDS)
        yield processes
    finally:
        await asyncio.gather(*(stop(process) for process in processes))
        await asyncio.gather(*readers)


async def start_worker(
    name: str, client_name: str, options: WorkerOptions
) -> asyncio.subprocess.Process:
    """Start a worker process on queue `name`; its connections carry `client_name`."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.integration.test_redis_queue"),
        *("--url", redis_url(), "--name", name, "--client-name", client_name),
        *options.arguments(),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )


async def _blocked_workers(client: Redis, prefix: str, count: int) -> bool:
    names = {c["name"] for c in await client.client_list() if c.get("cmd") == "blpop"}
    return len({n for n in names if n.startswith(prefix)}) >= count


@pytest.fixture
async def queue() -> AsyncIterator[cq.Queue]:
    driver = RedisDriver.from_url(redis_url(), name=unique_queue_name())
    queue = cq.Queue(driver)
    yield queue
    async with raw_client(redis_url()) as client:
        await wipe(driver, client)
    await queue.close()


def name_of(queue: cq.Queue) -> str:
    return cast(RedisDriver, queue.driver).name


# --- tests --------------------------------------------------------------------------------


async def test_four_workers_racing_on_a_thousand_jobs_due_at_once_run_each_once(
    queue: cq.Queue,
) -> None:
    ledger = Ledger()
    name = name_of(queue)
    options = WorkerOptions(work_seconds=0.001)
    async with running_workers(name, ledger, "abcd", options), contextlib.AsyncExitStack() as stack:
        # A producer clock that stands still: every job gets the very same due millisecond.
        producer = cq.Queue(RedisDriver.from_url(redis_url(), name=name, clock=FakeClock()))
        stack.push_async_callback(producer.close)

        jobs = (cq.adjust(Record(n), defer=timedelta(seconds=1)) for n in range(1000))
        ids = await producer.dispatch_many(jobs)
        ledger.expect(ids)
        assert len(await _due_times(cast(RedisDriver, producer.driver))) == 1
        await asyncio.wait_for(ledger.complete.wait(), GUARD_SECONDS)

    assert sorted(ledger.ids()) == sorted(ids)  # every job ran, and none twice
    assert len({worker for worker, _ in ledger.runs}) > 1  # the workers shared the batch
    assert await queue.info() == QueueInfo()


async def _due_times(driver: RedisDriver) -> set[float]:
    async with raw_client(redis_url()) as client:
        pairs = await client.zrange(driver.keys.delayed, 0, -1, withscores=True)
    return {score for _, score in cast(list[tuple[bytes, float]], pairs)}


@pytest.mark.chaos
async def test_a_worker_rides_out_a_redis_restart_and_nothing_is_lost(queue: cq.Queue) -> None:
    ledger = Ledger()
    # A short lease: a job whose pop answer the restart swallowed comes back within seconds.
    options = WorkerOptions(lease_seconds=5.0, work_seconds=0.02)
    async with running_workers(name_of(queue), ledger, "w", options) as [worker]:
        jobs = (cq.adjust(Record(n), max_attempts=10) for n in range(150))
        before = await queue.dispatch_many(jobs)
        ledger.expect(before)
        await asyncio.wait_for(ledger.wait_for_runs(30), GUARD_SECONDS)

        await restart_redis()  # while the worker is in the middle of the batch (AOF on)
        after = await queue.dispatch_many(cq.adjust(Record(n), max_attempts=10) for n in range(50))
        ledger.expect(after)

        await asyncio.wait_for(ledger.complete.wait(), GUARD_SECONDS)
        assert worker.returncode is None  # the same process reconnected by itself

    assert worker.returncode == 0
    assert set(ledger.ids()) == set(before) | set(after)
    assert await queue.info() == QueueInfo()


if __name__ == "__main__":
    asyncio.run(work(parse_worker_arguments(sys.argv[1:])))
