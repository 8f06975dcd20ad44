"""Measure PostgresDriver pop latency on an empty table and with 1,000,000 delayed jobs.

Also measures how soon a push wakes an idle pop through LISTEN/NOTIFY. Runs in a scratch
schema that is dropped afterwards; prints one table. Not a test: figures depend on the machine.

    COREQUEUE_TEST_POSTGRES_DSN=postgresql://postgres@127.0.0.1:15432/postgres \\
        .venv/bin/python bench/postgres_pop.py [--delayed 1000000] [--samples 500] [--explain]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import psycopg
from psycopg import sql

from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.postgres.queries import Queries
from corequeue.errors import QueueEmpty
from corequeue.job import PersistedJob

BATCH = 10_000
Row = tuple[str, list[float]]


def job(job_id: str) -> PersistedJob:
    """Return a small job like the ones applications push."""
    return PersistedJob(id=job_id, type="bench.Job", value=b'{"to":"a@example.com"}')


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    """Return how long `work` took, in milliseconds."""
    start = time.perf_counter()
    await work()
    return (time.perf_counter() - start) * 1000


async def pop_latency(driver: PostgresDriver, samples: int) -> list[float]:
    """Time pop() of one waiting job, `samples` times (the push and ack are not timed)."""
    timings = []
    for _ in range(samples):
        await driver.push(job(uuid.uuid4().hex), timedelta(0))
        start = time.perf_counter()
        popped = await driver.pop()
        timings.append((time.perf_counter() - start) * 1000)
        await driver.ack(popped)
    return timings


async def empty_look_latency(dsn: str, schema: str, samples: int) -> list[float]:
    """Time one look at a queue with nothing due (pop timeout zero: QueueEmpty at once)."""
    looker = PostgresDriver(dsn, name="bench", schema=schema, pop_timeout=timedelta(0))
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        try:
            await looker.pop()
        except QueueEmpty:
            timings.append((time.perf_counter() - start) * 1000)
    await looker.close()
    return timings


async def wake_latency(dsn: str, schema: str, samples: int) -> list[float]:
    """Time from a push's commit (in another driver, as in another process) to the idle pop."""
    name = "wake"
    popper = PostgresDriver(dsn, name=name, schema=schema, pop_timeout=timedelta(seconds=30))
    pusher = PostgresDriver(dsn, name=name, schema=schema)
    await pusher.push(job("warm-up"), timedelta(0))
    await popper.ack(await popper.pop())
    timings = []
    for n in range(samples):
        popping = asyncio.create_task(popper.pop())
        await asyncio.sleep(0.005)  # let the pop look, find nothing and start waiting
        await pusher.push(job(f"wake-{n}"), timedelta(0))
        pushed = time.perf_counter()
        popped = await popping
        timings.append((time.perf_counter() - pushed) * 1000)
        await popper.ack(popped)
    await popper.close()
    await pusher.close()
    return timings


async def fill_delayed(driver: PostgresDriver, count: int) -> float:
    """Push `count` jobs delayed by 1 hour to 30 days, in batches; return jobs per second."""
    start = time.perf_counter()
    for first in range(0, count, BATCH):
        batch = [
            (job(f"delayed-{n}"), timedelta(hours=1, seconds=n * 2.5))
            for n in range(first, min(first + BATCH, count))
        ]
        await driver.push_many(batch)
    return count / (time.perf_counter() - start)


async def analyze(dsn: str, schema: str) -> None:
    """Refresh planner statistics, as autovacuum would after a bulk load."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await connection.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, "jobs")))


async def drop_schema(dsn: str, schema: str) -> None:
    """Remove the scratch schema."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


async def explain(dsn: str, schema: str) -> None:
    """Print the plans of the statements an idle pop runs (they run: nothing is due)."""
    queries = Queries.for_schema(schema)
    params = {"queue": "bench", "now_us": None, "limit": 1, "lease_ms": 30_000}
    params |= {"lease_expired": "bench", "token": "bench"}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        for name in ("reserve", "next_event"):
            query = b"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + getattr(queries, name)
            cursor = await connection.execute(query, params)
            print(f"-- {name}")
            for (line,) in await cursor.fetchall():
                print(f"   {line}")


def print_table(rows: list[Row]) -> None:
    """Print p50, p99 and max of each measurement."""
    print(f"{'measurement':<52} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, timings in rows:
        ordered = sorted(timings)
        p99 = ordered[min(len(ordered) - 1, round(len(ordered) * 0.99))]
        median = statistics.median(ordered)
        print(f"{label:<52} {len(ordered):>6} {median:>8.2f} {p99:>8.2f} {ordered[-1]:>8.2f}")


async def main(dsn: str, delayed: int, samples: int, *, show_plans: bool) -> None:
    """Run every measurement in a scratch schema and print the table."""
    schema = f"corequeue_bench_{uuid.uuid4().hex[:8]}"
    driver = PostgresDriver(dsn, name="bench", schema=schema)
    rows: list[Row] = []
    try:
        await driver.migrate()
        await pop_latency(driver, 50)  # warm up connections and prepared statements
        rows.append(("pop, empty table", await pop_latency(driver, samples)))
        rows.append(
            ("push -> idle pop wakes (LISTEN/NOTIFY)", await wake_latency(dsn, schema, samples))
        )
        rate = await fill_delayed(driver, delayed)
        print(f"pushed {delayed:,} delayed jobs with push_many at {rate:,.0f} jobs/s")
        await analyze(dsn, schema)
        rows.append((f"pop, {delayed:,} delayed jobs", await pop_latency(driver, samples)))
        rows.append(
            (
                f"look, nothing due, {delayed:,} delayed",
                await empty_look_latency(dsn, schema, samples),
            )
        )
        print_table(rows)
        if show_plans:
            await explain(dsn, schema)
    finally:
        await driver.close()
        await drop_schema(dsn, schema)


def parse_arguments() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("COREQUEUE_TEST_POSTGRES_DSN"))
    parser.add_argument("--delayed", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--explain", action="store_true", help="print the query plans too")
    arguments = parser.parse_args()
    if not arguments.dsn:
        parser.error("give --dsn or set COREQUEUE_TEST_POSTGRES_DSN")
    return arguments


if __name__ == "__main__":
    arguments = parse_arguments()
    asyncio.run(
        main(arguments.dsn, arguments.delayed, arguments.samples, show_plans=arguments.explain)
    )
