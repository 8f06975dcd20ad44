"""Limits hold across workers: two queues on two driver instances share one store.

Each listener writes to a ledger when it starts and ends; the checks read that ledger, never
the store's own counters. Runs on every driver (in-process: two queues on one driver).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

import corequeue as cq
from corequeue.drivers.base import Driver
from tests.support.driver_postgres import TEST_SCHEMA, delete_queue, postgres_dsn
from tests.support.driver_redis import raw_client, redis_cluster_url, redis_url, wipe
from tests.support.drivers import POP_TIMEOUT

KINDS = ["in_process", "sqlite", "redis", "redis_cluster", "postgres"]
JOBS = 40


@asynccontextmanager
async def two_drivers(
    kind: str, tmp_path: Path, lease: timedelta = timedelta(seconds=1)
) -> AsyncIterator[tuple[Driver, Driver]]:
    """Yield two driver instances of `kind` on one store and one queue name (leases of 1 s)."""
    name = f"flow-{time.time_ns()}"
    if kind == "in_process":
        shared = cq.InProcessDriver(POP_TIMEOUT, lease=lease)
        yield shared, shared
        return
    pair: list[Driver]
    if kind == "sqlite":
        path = tmp_path / "jobs.db"
        pair = [cq.SQLiteDriver(path, name, pop_timeout=POP_TIMEOUT, lease=lease) for _ in range(2)]
    elif kind == "postgres":
        pair = [
            cq.PostgresDriver(
                postgres_dsn(), name=name, schema=TEST_SCHEMA, pop_timeout=POP_TIMEOUT, lease=lease
            )
            for _ in range(2)
        ]
    else:
        cluster = kind == "redis_cluster"
        url = redis_cluster_url() if cluster else redis_url()
        pair = [
            cq.RedisDriver.from_url(
                url, name=name, cluster=cluster, pop_timeout=POP_TIMEOUT, lease=lease
            )
            for _ in range(2)
        ]
    try:
        yield pair[0], pair[1]
    finally:
        if kind == "postgres":
            await delete_queue(postgres_dsn(), TEST_SCHEMA, name)
        elif kind.startswith("redis"):
            async with raw_client(url, cluster=kind == "redis_cluster") as client:
                await wipe(pair[0], client)  # type: ignore[arg-type]
        for driver in pair:
            await driver.close()


class Ledger:
    """What the listeners did: how many ran at once, overall and per group."""

    def __init__(self, expected: int) -> None:
        self.running: dict[str | None, int] = {}
        self.total = 0
        self.most = 0
        self.most_by_group: dict[str | None, int] = {}
        self.starts: list[float] = []
        self.finished = 0
        self.done = asyncio.Event()
        self.expected = expected

    def start(self, group: str | None) -> None:
        self.total += 1
        self.running[group] = self.running.get(group, 0) + 1
        self.most = max(self.most, self.total)
        self.most_by_group[group] = max(self.most_by_group.get(group, 0), self.running[group])
        self.starts.append(time.monotonic())

    def end(self, group: str | None) -> None:
        self.total -= 1
        self.running[group] -= 1
        self.finished += 1
        if self.finished >= self.expected:
            self.done.set()


async def run_two_workers(
    kind: str, tmp_path: Path, limits: cq.Limits, jobs: list[object], work: Callable[[], object]
) -> Ledger:
    ledger = Ledger(len(jobs))
    async with two_drivers(kind, tmp_path) as (first, second):
        queues = [cq.Queue(driver, parallelism=4, limits=limits) for driver in (first, second)]

        async def handle(job: cq.ReceivedJob) -> None:
            group = job.data.get("group")
            ledger.start(group)
            try:
                await work()  # type: ignore[misc]
            finally:
                ledger.end(group)

        for queue in queues:
            queue.subscribe(cq.listen(dict, handle))
        await queues[0].dispatch_many(jobs)
        async with asyncio.timeout(60):
            async with asyncio.TaskGroup() as tasks:
                running = [
                    tasks.create_task(queue.consume(handle_signals=False)) for queue in queues
                ]
                await ledger.done.wait()
                for task in running:
                    task.cancel()
    return ledger


def grouped(index: int, group: str) -> object:
    return cq.adjust({"n": index, "group": group}, group=group)


async def short_work() -> None:
    await asyncio.sleep(0.01)  # the job's own work, not synchronisation


@pytest.mark.parametrize("kind", KINDS)
async def test_two_workers_together_never_exceed_the_concurrency_limits(
    kind: str, tmp_path: Path
) -> None:
    jobs = [grouped(index, "big" if index % 4 else "small") for index in range(JOBS)]

    ledger = await run_two_workers(
        kind, tmp_path, cq.Limits(concurrency=3, group_concurrency=2), jobs, short_work
    )

    assert ledger.finished == JOBS
    assert ledger.most <= 3
    assert max(ledger.most_by_group.values()) <= 2


@pytest.mark.parametrize("kind", KINDS)
async def test_two_workers_together_keep_to_a_rate_of_50_per_second_within_10_percent(
    kind: str, tmp_path: Path
) -> None:
    jobs: list[object] = [{"n": index} for index in range(251)]

    async def nothing() -> None:
        return None

    ledger = await run_two_workers(
        kind, tmp_path, cq.Limits(rate=cq.Rate(50, timedelta(seconds=1))), jobs, nothing
    )

    per_second = (len(ledger.starts) - 1) / (ledger.starts[-1] - ledger.starts[0])
    assert ledger.finished == 251
    assert 45 <= per_second <= 55  # 250 intervals of 20 ms: about 5 s


async def test_holds_are_counted_by_reason_in_the_metrics() -> None:
    from prometheus_client import CollectorRegistry

    from corequeue.metrics import prometheus_metrics

    registry = CollectorRegistry()
    metrics = prometheus_metrics(registry)
    queue = cq.Queue(
        cq.InProcessDriver(POP_TIMEOUT),
        parallelism=4,
        limits=cq.Limits(concurrency=1),
        metrics=metrics,
        gauge=metrics.gauge,
        gauge_interval=timedelta(milliseconds=10),
    )
    ledger = Ledger(6)

    async def handle(job: cq.ReceivedJob) -> None:
        ledger.start(None)
        await short_work()
        ledger.end(None)

    def held() -> float:
        labels = {"queue": "default", "reason": "concurrency"}
        return registry.get_sample_value("corequeue_jobs_held_back_total", labels) or 0.0

    queue.subscribe(cq.listen(dict, handle))
    await queue.dispatch_many([{"n": index} for index in range(6)])
    async with asyncio.timeout(30):
        consuming = asyncio.create_task(queue.consume(handle_signals=False))
        await ledger.done.wait()
        while held() == 0:  # reported every gauge interval: poll until it is
            await asyncio.sleep(0.01)
        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming

    assert ledger.most == 1
    assert held() >= 1


HOLDER = Path(__file__).resolve().parent / "workers" / "flow_holder.py"


@pytest.mark.parametrize("kind", ["sqlite", "redis", "redis_cluster", "postgres"])
async def test_slots_of_a_killed_worker_come_back_when_its_leases_run_out(
    kind: str, tmp_path: Path
) -> None:
    lease = timedelta(seconds=1)
    async with two_drivers(kind, tmp_path) as (first, _):
        where = _where(kind, first)
        jobs = [
            cq.adjust({"n": n, "group": group}, group=group, max_attempts=2)
            for n, group in enumerate(["A", "B", "A", "B", "A", "B"])
        ]
        limits = cq.Limits(concurrency=2, group_concurrency=1)
        queue = cq.Queue(first, parallelism=4, limits=limits)
        await queue.dispatch_many(jobs)
        holder = await asyncio.create_subprocess_exec(
            sys.executable, str(HOLDER), kind, where, queue_name(first), "2",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert holder.stdout is not None
        async with asyncio.timeout(30):
            held = [(await holder.stdout.readline()).decode().split()[1] for _ in range(2)]
        holder.send_signal(signal.SIGKILL)
        await holder.wait()

        ledger = Ledger(len(jobs))

        async def handle(job: cq.ReceivedJob) -> None:
            ledger.start(job.data["group"])
            await short_work()
            ledger.end(job.data["group"])

        queue.subscribe(cq.listen(dict, handle))
        started = time.monotonic()
        async with asyncio.timeout(60):
            consuming = asyncio.create_task(queue.consume(handle_signals=False))
            await ledger.done.wait()
            consuming.cancel()
            await asyncio.gather(consuming, return_exceptions=True)

    assert len(held) == 2
    assert ledger.finished == len(jobs)
    assert ledger.most <= 2
    assert max(ledger.most_by_group.values()) <= 1
    assert time.monotonic() - started >= lease.total_seconds() * 0.9  # the slots waited


def queue_name(driver: Driver) -> str:
    return str(driver.name)  # type: ignore[attr-defined]


def _where(kind: str, driver: Driver) -> str:
    if kind == "sqlite":
        return str(driver.path)  # type: ignore[attr-defined]
    if kind == "postgres":
        return f"{TEST_SCHEMA} {postgres_dsn()}"
    return redis_cluster_url() if kind == "redis_cluster" else redis_url()
