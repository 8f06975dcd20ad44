"""The Queue over PostgreSQL end to end: worker processes, transactional dispatch, a restart.

Workers are real processes running this module (`python -m tests.integration.test_postgres_queue
...`); each prints `done <job id>` when its listener has run a job, and the test reads those
lines as the ledger of who ran what.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import psycopg
import pytest

import corequeue as cq
from corequeue.drivers.base import QueueInfo
from corequeue.drivers.postgres import PostgresDriver
from tests.support.driver_postgres import (
    fresh_schema,
    postgres_dsn,
    restart_postgres,
    unique_queue_name,
    wait_until_listening,
    with_application_name,
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

    __job_type__ = "tests.integration.postgres.Record"  # the same in workers run as __main__
    n: int


# --- the worker process -------------------------------------------------------------------


async def work(arguments: argparse.Namespace) -> None:
    """Consume queue `arguments.name` until SIGTERM, printing `done <id>` per job run."""
    driver = PostgresDriver(
        arguments.dsn,
        name=arguments.name,
        schema=arguments.schema,
        lease=timedelta(seconds=arguments.lease_seconds),
    )
    await consume_printing(driver, Record, arguments)


def parse_worker_arguments(argv: list[str]) -> argparse.Namespace:
    """Read a worker's command line."""
    parser = worker_parser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    return parser.parse_args(argv)


# --- harness ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_worker(
    dsn: str, schema: str, name: str, ledger: Ledger, tag: str, options: WorkerOptions
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a worker process until the block ends, then stop it with SIGTERM.

    Yields once the worker's driver is LISTENing, so it is consuming.
    """
    application_name = f"cq-worker-{tag}-{uuid.uuid4().hex[:8]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.test_postgres_queue",
        *("--dsn", with_application_name(dsn, application_name), "--schema", schema),
        *("--name", name, *options.arguments()),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    reader = asyncio.create_task(read_ledger(process, tag, ledger))
    try:
        await wait_until_listening(dsn, application_name, GUARD_SECONDS)
        yield process
    finally:
        await stop(process)
        await reader


@pytest.fixture
def dsn() -> str:
    return postgres_dsn()


@pytest.fixture
async def schema(dsn: str) -> AsyncIterator[str]:
    async with fresh_schema(dsn) as name:
        yield name


@pytest.fixture
async def queue(dsn: str, schema: str) -> AsyncIterator[cq.Queue]:
    queue = cq.Queue(PostgresDriver(dsn, name=unique_queue_name(), schema=schema))
    yield queue
    await queue.close()


def name_of(queue: cq.Queue) -> str:
    return cast(PostgresDriver, queue.driver).name


# --- tests --------------------------------------------------------------------------------


async def test_two_worker_processes_never_run_the_same_job(
    dsn: str, schema: str, queue: cq.Queue
) -> None:
    ledger = Ledger()
    options = WorkerOptions(work_seconds=0.01)
    async with (
        running_worker(dsn, schema, name_of(queue), ledger, "a", options),
        running_worker(dsn, schema, name_of(queue), ledger, "b", options),
    ):
        ids = await queue.dispatch_many(Record(n) for n in range(200))
        ledger.expect(ids)
        await asyncio.wait_for(ledger.complete.wait(), GUARD_SECONDS)

    assert sorted(ledger.ids()) == sorted(ids)  # every job ran, and none twice
    assert {worker for worker, _ in ledger.runs} == {"a", "b"}  # and both workers took part
    assert await queue.info() == QueueInfo()


@pytest.mark.chaos
async def test_a_worker_rides_out_a_postgres_restart_and_nothing_is_lost(
    dsn: str, schema: str, queue: cq.Queue
) -> None:
    ledger = Ledger()
    # A short lease: a job whose pop answer the restart swallowed comes back within seconds.
    options = WorkerOptions(lease_seconds=5.0, work_seconds=0.02)
    async with running_worker(dsn, schema, name_of(queue), ledger, "w", options) as worker:
        jobs = (cq.adjust(Record(n), max_attempts=10) for n in range(150))
        before = await queue.dispatch_many(jobs)
        ledger.expect(before)
        await asyncio.wait_for(ledger.wait_for_runs(30), GUARD_SECONDS)

        await restart_postgres()  # while the worker is in the middle of the batch
        after = await queue.dispatch_many(cq.adjust(Record(n), max_attempts=10) for n in range(50))
        ledger.expect(after)

        await asyncio.wait_for(ledger.complete.wait(), GUARD_SECONDS)
        assert worker.returncode is None  # the same process reconnected by itself

    assert worker.returncode == 0
    assert set(ledger.ids()) == set(before) | set(after)
    assert await queue.info() == QueueInfo()


async def test_dispatch_in_a_transaction_runs_only_after_commit(dsn: str, queue: cq.Queue) -> None:
    ran: asyncio.Queue[int] = asyncio.Queue()

    async def run(job: cq.Job) -> None:
        await ran.put(job.data.n)

    queue.subscribe(cq.listen(Record, run))
    consuming = asyncio.create_task(queue.consume(handle_signals=False))
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        async with connection.transaction(force_rollback=True):
            await queue.dispatch(Record(1), connection=connection)
        async with connection.transaction():
            await queue.dispatch(Record(2), connection=connection)

    assert await asyncio.wait_for(ran.get(), GUARD_SECONDS) == 2
    consuming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consuming
    assert ran.empty()
    assert await queue.info() == QueueInfo()


async def test_dispatch_sync_joins_a_sync_connection_transaction(dsn: str, queue: cq.Queue) -> None:
    def sync_view() -> list[str]:
        with psycopg.connect(dsn) as connection:
            kept = queue.dispatch_sync(Record(1), connection=connection)
            connection.commit()
            queue.dispatch_sync(Record(2), connection=connection)
            connection.rollback()
        return [kept]

    kept = await asyncio.to_thread(sync_view)

    assert await queue.info() == QueueInfo(waiting=1)
    assert [(await queue.driver.pop()).id] == kept
    # Queue.close() stops its helper loop before it closes the driver; closing the driver first
    # lets it close the pool it opened on that loop, on that loop.
    await queue.driver.close()


if __name__ == "__main__":
    asyncio.run(work(parse_worker_arguments(sys.argv[1:])))
