"""A process that awaits one job's result, for the cross-process result tests.

Usage: python -m tests.integration.workers.result_waiter KIND TARGET QUEUE JOB_ID

KIND is sqlite (TARGET a file), redis (a URL) or postgres (a DSN; schema corequeue_test).
Prints "waiting" once its first look found the job unfinished, then one JSON line: the result,
or the error `queue.result()` raised.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import corequeue as cq
from corequeue.drivers.base import Channel


def make_driver(kind: str, target: str, name: str) -> cq.Driver:
    if kind == "sqlite":
        return cq.SQLiteDriver(Path(target), name)
    if kind == "redis":
        from corequeue.drivers.redis import RedisDriver

        return RedisDriver.from_url(target, name)
    from corequeue.drivers.postgres import PostgresDriver

    return PostgresDriver(target, name, "corequeue_test")


async def main(kind: str, target: str, name: str, job_id: str) -> None:
    driver = make_driver(kind, target, name)
    queue = cq.Queue(driver)
    first = await driver.wait_finished(job_id, timedelta(0))
    if first is None or first.channel in (Channel.COMPLETED, Channel.FAILED, Channel.TIMEOUT):
        print(json.dumps({"error": f"not pending at the first look: {first}"}), flush=True)
        return
    print("waiting", flush=True)
    try:
        outcome = {"result": await queue.result(job_id, timeout=30)}
    except Exception as exc:
        outcome = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(outcome), flush=True)
    await queue.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
