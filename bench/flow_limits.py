"""Drain cost of flow control: one worker draining the same jobs with and without limits.

Not a test: figures depend on the machine. Each variant fills a fresh queue with `--jobs` jobs
spread over `--groups` groups, then times one in-process consumer (`--parallelism` slots)
draining it:

- plain: no limits, every job at priority 0 (the reference);
- priorities: no limits, priorities -100..100 mixed;
- group_concurrency: `Limits(group_concurrency=...)`, by default high enough not to bind;
- rate: `Limits(rate=...)`, set far above the drain rate so it never binds;
- all: concurrency, group concurrency, rate and group rate together, none binding.

    .venv/bin/python bench/flow_limits.py --driver redis --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker import Target, make_driver

import corequeue as cq
from corequeue.drivers.base import Channel

SECOND = timedelta(seconds=1)


def variants(options: argparse.Namespace) -> dict[str, tuple[cq.Limits | None, bool]]:
    """Name each variant: its limits and whether its jobs carry mixed priorities."""
    fast = cq.Rate(1_000_000, SECOND)
    return {
        "plain": (None, False),
        "priorities": (None, True),
        "group_concurrency": (cq.Limits(group_concurrency=options.group_concurrency), False),
        "rate": (cq.Limits(rate=fast), False),
        "all": (
            cq.Limits(
                concurrency=options.parallelism * 10,
                group_concurrency=options.group_concurrency,
                rate=fast,
                group_rate=fast,
            ),
            False,
        ),
    }


async def drain_once(
    target: Target, options: argparse.Namespace, limits: cq.Limits | None, mixed: bool
) -> float:
    """Fill a fresh queue and return the jobs per second one consumer drains it at."""
    target = Target(target.driver, target.url, f"flow-{uuid.uuid4().hex[:10]}")
    queue = cq.Queue(make_driver(target), parallelism=options.parallelism, limits=limits)
    done = asyncio.Event()
    finished = 0

    async def handle(job: cq.Job) -> None:
        nonlocal finished
        finished += 1
        if finished >= options.jobs:
            done.set()

    queue.subscribe(cq.listen(dict, handle))
    jobs = [
        cq.adjust(
            {"n": n},
            group=f"g{n % options.groups}",
            priority=(n * 37) % 201 - 100 if mixed else 0,
        )
        for n in range(options.jobs)
    ]
    try:
        for first in range(0, len(jobs), 1000):
            await queue.dispatch_many(jobs[first : first + 1000])
        started = time.perf_counter()
        consuming = asyncio.create_task(queue.consume(handle_signals=False))
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
    finally:
        for channel in Channel:
            await queue.driver.flush(channel)
        await queue.close()
    return float(options.jobs) / elapsed


async def run(options: argparse.Namespace) -> dict[str, Any]:
    target = Target(options.driver, _url(options))
    figures: dict[str, Any] = {"driver": options.driver, "jobs": options.jobs}
    await drain_once(target, options, None, False)  # warm up: scripts, connections, caches
    for name, (limits, mixed) in variants(options).items():
        rates = [await drain_once(target, options, limits, mixed) for _ in range(options.runs)]
        figures[name] = round(max(rates))
    plain = figures["plain"]
    figures["ratios"] = {
        name: round(figures[name] / plain, 3) for name in variants(options) if name != "plain"
    }
    return figures


def _url(options: argparse.Namespace) -> str:
    if options.driver == "redis":
        return str(options.redis_url)
    if options.driver == "postgres":
        return str(options.postgres_dsn)
    if options.driver == "sqlite":
        return str(Path(options.scratch) / "flow.db")
    return ""


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--driver", default="redis")
    parser.add_argument("--redis-url", default=os.environ.get("COREQUEUE_BENCH_REDIS_URL"))
    parser.add_argument("--postgres-dsn", default=os.environ.get("COREQUEUE_BENCH_POSTGRES_DSN"))
    parser.add_argument("--scratch", default=".")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--group-concurrency", type=int, default=100)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="best of this many per variant")
    parser.add_argument("--results", type=Path, default=None, help="write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    options = parse_arguments(argv)
    figures = asyncio.run(run(options))
    text = json.dumps(figures, indent=2)
    print(text)
    if options.results is not None:
        options.results.write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
