"""A chaos worker process: consumes the chaos queue and records every run in its ledger.

Usage: python -m tests.chaos.worker CONFIG_JSON

CONFIG_JSON holds `driver` ("sqlite", "redis" or "postgres"), `target` (file, URL or DSN),
`queue`, `schema` (PostgreSQL), `ledger` (this worker's ledger file), `lease_ms` and
`parallelism`. The controller kills this process with SIGKILL at random moments.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import corequeue as cq
from corequeue.drivers.base import LEASE_EXPIRED
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.redis import RedisDriver
from tests.chaos.ledger import ChaosJob, LedgerWriter

POP_TIMEOUT = timedelta(milliseconds=250)
RETRY_AFTER = timedelta(milliseconds=100)


class Flaky(Exception):
    """Raised on purpose by the attempts a chaos job is meant to fail."""


def recording(driver_class: type[Any], ledger: LedgerWriter) -> type[Any]:
    """Return a subclass of `driver_class` that writes down what the store confirmed.

    Every line is written once the store confirmed it: a reservation (`popped`), an ack, a retry
    or fail (`settled`, with the attempt that ran: the consumer counts the next attempt before
    `retry`), a release. A settle the store refused as stale (fenced) writes nothing. `pop()` of
    these drivers goes through `pop_many()`.
    """

    async def pop_many(self: Any, limit: int) -> list[cq.PersistedJob]:
        jobs: list[cq.PersistedJob] = await driver_class.pop_many(self, limit)
        for job in jobs:
            recovered = "recovered" if job.last_error == LEASE_EXPIRED else ""
            ledger.write("popped", job.id, job.attempts, recovered)
        return jobs

    async def ack_many(self: Any, jobs: Sequence[cq.PersistedJob]) -> list[cq.PersistedJob]:
        stale: list[cq.PersistedJob] = await driver_class.ack_many(self, jobs)
        stale_ids = {id(job) for job in stale}
        for job in jobs:
            if id(job) not in stale_ids:
                ledger.write("acked", job.id, job.attempts)
        return stale

    methods: dict[str, Any] = {"pop_many": pop_many, "ack_many": ack_many}
    for method, line, attempt_offset in [
        ("ack", "acked", 0),
        ("retry", "settled", -1),
        ("fail", "settled", 0),
        ("release", "released", 0),
    ]:
        methods[method] = _confirmed(getattr(driver_class, method), ledger, line, attempt_offset)
    return type(f"Recording{driver_class.__name__}", (driver_class,), methods)


def _confirmed(
    settle: Callable[[Any, cq.PersistedJob], Awaitable[bool]],
    ledger: LedgerWriter,
    line: str,
    attempt_offset: int,
) -> Callable[[Any, cq.PersistedJob], Awaitable[bool]]:
    """Wrap a single-job settle so the ledger gets `line` when the store confirms it."""

    async def recorded(self: Any, job: cq.PersistedJob) -> bool:
        done = await settle(self, job)
        if done:
            ledger.write(line, job.id, job.attempts + attempt_offset)
        return done

    return recorded


def make_driver(config: dict[str, Any], ledger: LedgerWriter) -> cq.Driver:
    """Build the driver named by the config, recording acks in `ledger`."""
    lease = timedelta(milliseconds=config["lease_ms"])
    kind, target, name = config["driver"], config["target"], config["queue"]
    if kind == "sqlite":
        sqlite_class = recording(cq.SQLiteDriver, ledger)
        return sqlite_class(  # type: ignore[no-any-return]
            Path(target), name, pop_timeout=POP_TIMEOUT, lease=lease
        )
    if kind == "redis":
        redis_class = recording(RedisDriver, ledger)
        return redis_class.from_url(  # type: ignore[no-any-return]
            target, name, pop_timeout=POP_TIMEOUT, lease=lease, socket_timeout=5
        )
    postgres_class = recording(PostgresDriver, ledger)
    return postgres_class(  # type: ignore[no-any-return]
        target,
        name,
        config["schema"],
        pop_timeout=POP_TIMEOUT,
        lease=lease,
        pool_max_size=4,
        pool_timeout=timedelta(seconds=2),
    )


async def main(config: dict[str, Any]) -> None:
    ledger = LedgerWriter(Path(config["ledger"]))
    queue = cq.Queue(
        make_driver(config, ledger),
        parallelism=config["parallelism"],
        backoff=lambda previous: RETRY_AFTER,
        shutdown_grace=timedelta(seconds=2),
        limits=limits_of(config.get("limits")),
    )

    @queue.listener(ChaosJob)
    async def work(job: cq.ReceivedJob) -> None:
        chaos: ChaosJob = job.data
        ledger.write("start", job.id, job.attempt)
        if chaos.work_ms:
            await asyncio.sleep(chaos.work_ms / 1000)
        if job.attempt <= chaos.fail_first:
            ledger.write("fail", job.id, job.attempt)
            raise Flaky(f"{chaos.kind} job fails attempt {job.attempt} on purpose")
        ledger.write("done", job.id, job.attempt, sync=True)

    ledger.write("ready", "-", 0)
    try:
        await queue.consume()
    finally:
        await queue.close()


def limits_of(given: dict[str, int] | None) -> cq.Limits | None:
    """The Limits of the run's `limits` setting (None: a run without flow control)."""
    if given is None:
        return None
    return cq.Limits(
        concurrency=given["concurrency"],
        group_concurrency=given["group_concurrency"],
        rate=cq.Rate(given["rate_per_second"], timedelta(seconds=1)),
    )


def _unplanned(record: logging.LogRecord) -> bool:
    """Keep log lines about anything but the failures the chaos jobs make on purpose."""
    return "on purpose" not in record.getMessage()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger().handlers[0].addFilter(_unplanned)
    asyncio.run(main(json.loads(sys.argv[1])))
