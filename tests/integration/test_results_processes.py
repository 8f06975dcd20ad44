"""A result awaited in another process: dispatched and run here, read there, on each store."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

import corequeue as cq
from corequeue.drivers.base import Driver
from tests.integration.conftest import consuming
from tests.support.driver_postgres import TEST_SCHEMA, delete_queue, postgres_dsn
from tests.support.driver_redis import raw_client, redis_url, unique_queue_name, wipe

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def shared_store(
    kind: str, tmp_path: Path, lease: timedelta = timedelta(seconds=30)
) -> AsyncIterator[tuple[Driver, str, str]]:
    """Yield a driver on a fresh queue, with the target and name another process opens."""
    name = unique_queue_name()
    if kind == "sqlite":
        target = str(tmp_path / "jobs.db")
        sqlite = cq.SQLiteDriver(target, name, lease=lease)
        yield sqlite, target, name
        await sqlite.close()
        return
    if kind == "redis":
        from corequeue.drivers.redis import RedisDriver

        url = redis_url()
        redis = RedisDriver.from_url(url, name, lease=lease)
        yield redis, url, name
        async with raw_client(url) as client:
            await wipe(redis, client)
        await redis.close()
        return
    from corequeue.drivers.postgres import PostgresDriver

    dsn = postgres_dsn()
    postgres = PostgresDriver(dsn, name, TEST_SCHEMA, lease=lease)
    yield postgres, dsn, name
    await postgres.close()
    await delete_queue(dsn, TEST_SCHEMA, name)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgres"])
async def test_a_result_is_awaited_from_another_process(kind: str, tmp_path: Path) -> None:
    async with shared_store(kind, tmp_path) as (driver, target, name):
        queue = cq.Queue(driver, keep_results=timedelta(minutes=1))

        @queue.listener(str)
        async def shout(job: cq.ReceivedJob) -> str:
            return str(job.data).upper()

        job_id = await queue.dispatch("hello")
        waiter = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.workers.result_waiter",
            kind, target, name, job_id,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert waiter.stdout is not None
        try:
            first = await asyncio.wait_for(waiter.stdout.readline(), 30)
            assert first.decode().strip() == "waiting"
            async with consuming(queue):
                started = time.monotonic()
                line = await asyncio.wait_for(waiter.stdout.readline(), 30)
                seen_after = time.monotonic() - started
        finally:
            if waiter.returncode is None:
                await asyncio.wait_for(waiter.wait(), 30)

    assert json.loads(line) == {"result": "HELLO"}
    assert seen_after < 5.0


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgres"])
async def test_a_running_job_is_cancelled_from_another_process_within_a_renewal(
    kind: str, tmp_path: Path
) -> None:
    lease = timedelta(milliseconds=900)  # renewed every 300 ms
    events = cq.SyncDispatcher()
    aborted: list[cq.BeforeAbortPayload] = []

    async def record(job: cq.Job) -> None:
        aborted.append(job.data)

    events.subscribe(cq.listen(cq.BeforeAbortPayload, record))
    async with shared_store(kind, tmp_path, lease) as (driver, target, name):
        queue = cq.Queue(driver, event_dispatcher=events, keep_results=timedelta(minutes=1))
        started, stopped = asyncio.Event(), asyncio.Event()

        @queue.listener(str)
        async def forever(job: cq.ReceivedJob) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            finally:
                stopped.set()

        job_id = await queue.dispatch(cq.adjust("work", max_attempts=3))
        async with consuming(queue):
            await asyncio.wait_for(started.wait(), 30)
            canceller = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.integration.workers.canceller",
                kind, target, name, job_id,
                cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(canceller.communicate(), 30)
            requested = time.monotonic()
            await asyncio.wait_for(stopped.wait(), 30)
            stopped_after = time.monotonic() - requested
            with pytest.raises(cq.JobFailed) as failed:
                await queue.result(job_id, timeout=10)

    assert out.decode().strip() == "True"
    assert stopped_after < lease.total_seconds() / 3 + 0.5
    assert failed.value.last_error == "cancelled"
    assert [type(payload.err) for payload in aborted] == [cq.JobCancelled]
