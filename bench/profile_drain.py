"""Fill a queue and drain it in this one process, for a profiler to look at the consumer's hot path.

    bench/.venv-peers-a/bin/py-spy record -r 500 -o drain.svg -- \\
        .venv/bin/python bench/profile_drain.py --driver redis --url redis://127.0.0.1:6379/0

`bench/run --peers` installs py-spy into bench/.venv-peers-a (or `pip install py-spy` anywhere:
it attaches to any Python). Prints the drain rate; the figures of record come from bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

from corequeue_workloads import empty, wait_until_empty
from worker import Recorder, Target, io_call, make_driver, payload, redis_client

import corequeue as cq


async def profile(options: argparse.Namespace) -> float:
    """Fill the queue with `options.jobs` jobs, drain them here, return jobs per second."""
    target = Target(options.driver, options.url)
    queue = cq.Queue(
        make_driver(target),
        parallelism=options.parallelism,
        prefetch=options.prefetch,
        name=target.queue,
        keep_results=timedelta(seconds=options.keep_results) if options.keep_results else None,
    )
    io_client = redis_client(options.io_url) if options.io_url else None
    try:
        await queue.dispatch_many([payload(n) for n in range(options.jobs)])
        queue.subscribe(cq.listen(dict, Recorder(io_call(io_client, target)).handle))
        start = time.perf_counter()
        consuming = asyncio.create_task(queue.consume(handle_signals=False))
        await wait_until_empty(queue.driver, deadline_seconds=600)
        elapsed = time.perf_counter() - start
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
    finally:
        await empty(queue)
        await queue.close()
        if io_client is not None:
            await io_client.delete(target.io_key)
            await io_client.aclose()
    jobs: int = options.jobs
    return jobs / elapsed


def main() -> None:
    """Read the command line, drain, print the rate."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--driver", default="redis", help="redis, sqlite, postgres, in_process")
    parser.add_argument("--url", default="", help="Redis URL, PostgreSQL DSN or SQLite file")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--prefetch", type=int, default=0)
    parser.add_argument("--keep-results", type=float, default=0.0, help="Queue(keep_results=S)")
    parser.add_argument("--io-url", default="", help="the listener makes one INCR here per job")
    options = parser.parse_args()
    rate = asyncio.run(profile(options))
    print(f"{options.driver}: drained {options.jobs:,} jobs at {rate:,.0f} jobs/s")


if __name__ == "__main__":
    main()
