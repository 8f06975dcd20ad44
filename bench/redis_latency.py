"""Measure RedisDriver latency and memory: push -> pop wake-up, deferred lateness, bytes per job.

Also times pop() and push_many() with many delayed jobs in the queue. Uses a queue of its own
on the server (deleted afterwards) and the server's clock, as in production; prints one table.
Not a test: figures depend on the machine.

    COREQUEUE_TEST_REDIS_URL=redis://127.0.0.1:16379/0 \\
        .venv/bin/python bench/redis_latency.py [--samples 1000] [--jobs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import timedelta

from redis.asyncio import Redis

from corequeue.drivers.base import Channel
from corequeue.drivers.redis import RedisDriver
from corequeue.job import PersistedJob

LONG = timedelta(seconds=30)
Row = tuple[str, list[float]]


def job(job_id: str) -> PersistedJob:
    """Return a small job like the ones applications push (a 44-byte JSON payload)."""
    return PersistedJob(
        id=job_id, type="myapp.jobs.SendEmail", value=b'{"to":"a@example.com","subject":"hello"}'
    )


async def wake_up_latency(producer: RedisDriver, consumer: RedisDriver, samples: int) -> Row:
    """Time from the start of push() to the return of a pop() that was already blocked."""
    timings = []
    for _ in range(samples):
        popping = asyncio.create_task(consumer.pop())
        await asyncio.sleep(0.005)  # let the pop reach BLPOP: what is measured is the wake-up
        start = time.perf_counter()
        await producer.push(job(uuid.uuid4().hex), timedelta(0))
        popped = await popping
        timings.append((time.perf_counter() - start) * 1000)
        await consumer.ack(popped)
    return "push -> blocked pop returns (ms)", timings


async def deferred_lateness(
    producer: RedisDriver, consumer: RedisDriver, client: Redis, samples: int
) -> Row:
    """Time from a deferred job's due time (server clock) to the return of an idle pop."""
    lateness = []
    for _ in range(samples):
        job_id = uuid.uuid4().hex
        await producer.push(job(job_id), timedelta(milliseconds=random.randint(20, 120)))
        due_ms = await client.zscore(producer.keys.delayed, job_id)
        assert due_ms is not None
        popped = await consumer.pop()
        seconds, micros = await client.time()  # the same clock the due time came from
        lateness.append(seconds * 1000 + micros / 1000 - due_ms)
        await consumer.ack(popped)
    return "deferred job: pop returns after due (ms)", lateness


async def pop_latency(driver: RedisDriver, samples: int) -> list[float]:
    """Time pop() of one waiting job, `samples` times (the push and ack are not timed)."""
    timings = []
    for _ in range(samples):
        await driver.push(job(uuid.uuid4().hex), timedelta(0))
        start = time.perf_counter()
        popped = await driver.pop()
        timings.append((time.perf_counter() - start) * 1000)
        await driver.ack(popped)
    return timings


async def load(driver: RedisDriver, jobs: int, delay: timedelta) -> float:
    """Push `jobs` jobs with `delay` in batches of 1,000; return jobs per second."""
    batch = [(job(f"{n:032x}"), delay) for n in range(jobs)]
    start = time.perf_counter()
    for first in range(0, jobs, 1000):
        await driver.push_many(batch[first : first + 1000])
    return jobs / (time.perf_counter() - start)


async def bytes_per_job(driver: RedisDriver, client: Redis, jobs: int, delay: timedelta) -> float:
    """Return the growth of the server's used memory per job pushed."""
    before = await used_memory(client)
    await load(driver, jobs, delay)
    return (await used_memory(client) - before) / jobs


async def used_memory(client: Redis) -> int:
    """Return the server's `used_memory` in bytes."""
    info = await client.info("memory")
    return int(info["used_memory"])


def summary(row: Row) -> str:
    """Return one table line: p50, p99 and max."""
    label, values = row
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    p50 = statistics.median(ordered)
    return f"{label:<44} p50 {p50:7.2f}   p99 {p99:7.2f}   max {ordered[-1]:7.2f}"


async def main(arguments: argparse.Namespace) -> None:
    """Run every measurement on a scratch queue and print the results."""
    url = os.environ.get("COREQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"bench-{uuid.uuid4().hex[:8]}"
    producer = RedisDriver.from_url(url, name=name)
    consumer = RedisDriver.from_url(url, name=name, pop_timeout=LONG)
    client = Redis.from_url(url)
    samples, jobs = arguments.samples, arguments.jobs
    try:
        print(summary(await wake_up_latency(producer, consumer, samples)))
        print(summary(await deferred_lateness(producer, consumer, client, samples)))
        print(summary(("pop of one waiting job (ms)", await pop_latency(producer, samples))))
        size = await bytes_per_job(producer, client, jobs, timedelta(0))
        print(f"memory per waiting job (used_memory delta)     {size:7.0f} bytes")
        await producer.flush(Channel.WAITING)
        size = await bytes_per_job(producer, client, jobs, timedelta(hours=1))
        print(f"memory per delayed job (used_memory delta)     {size:7.0f} bytes")
        delayed = f"pop, {jobs:,} delayed jobs beside (ms)"
        print(summary((delayed, await pop_latency(producer, samples))))
        await producer.flush(Channel.DELAYED)
        rate = await load(producer, jobs, timedelta(hours=1))
        print(f"push_many, batches of 1,000                    {rate:7.0f} jobs/s")
        await producer.push(job("one"), timedelta(0))
        envelope = len(await client.hget(producer.keys.jobs, "one") or b"")
        print(f"envelope of one job (hash field value)         {envelope:7d} bytes")
    finally:
        for channel in Channel:
            await producer.flush(channel)
        await client.delete(*producer.keys.all())
        await client.aclose()
        await producer.close()
        await consumer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=100_000)
    asyncio.run(main(parser.parse_args()))
