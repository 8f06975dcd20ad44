"""A worker that takes limited slots and never gives them back: the test SIGKILLs it.

    python flow_holder.py KIND WHERE QUEUE COUNT

It pops COUNT jobs under `Limits(concurrency=2, group_concurrency=1)` with a one-second lease,
prints `held <id>` for each, then waits to be killed without renewing its leases.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import corequeue as cq
from corequeue.drivers.base import Driver

LEASE = timedelta(seconds=1)


def build(kind: str, where: str, queue: str) -> Driver:
    if kind == "sqlite":
        return cq.SQLiteDriver(where, queue, lease=LEASE)
    if kind == "postgres":
        schema, dsn = where.split(" ", 1)
        return cq.PostgresDriver(dsn, name=queue, schema=schema, lease=LEASE)
    cluster = kind == "redis_cluster"
    return cq.RedisDriver.from_url(where, name=queue, cluster=cluster, lease=LEASE)


async def main(kind: str, where: str, queue: str, count: int) -> None:
    driver = build(kind, where, queue)
    driver.set_limits(cq.Limits(concurrency=2, group_concurrency=1))
    held = 0
    while held < count:
        for job in await driver.pop_many(count - held):
            print(f"held {job.id}", flush=True)
            held += 1
    await asyncio.Event().wait()  # killed here, holding its slots


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
