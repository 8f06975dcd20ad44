"""The corequeue benchmark: enqueue, drain and deferred lateness for every driver, and its peers.

Run it through `bench/run`, which starts Redis and PostgreSQL on loopback and, with `--peers`,
installs the peer libraries in a separate virtualenv. Not a test: figures depend on the machine.

    bench/run                       # every corequeue driver
    bench/run --peers               # the same workloads on Dramatiq, Huey, Taskiq, ... too
    .venv/bin/python bench/bench.py --redis-url redis://127.0.0.1:6379/0 --drivers redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from corequeue_workloads import (
    Target,
    drain,
    empty,
    enqueue_many,
    enqueue_one_by_one,
    lateness,
    make_driver,
    run_worker,
)
from report import print_table, write_json

import corequeue as cq

BENCH_DIR = Path(__file__).resolve().parent
DRIVERS = ("redis", "sqlite", "postgres", "in_process")
PEERS = ("dramatiq", "huey", "taskiq", "saq", "celery", "arq", "rq")


async def measure_driver(target: Target, options: argparse.Namespace) -> dict[str, Any]:
    """Run the three workloads on one driver and return its figures."""
    queue = cq.Queue(
        make_driver(target),
        parallelism=options.parallelism,
        prefetch=options.prefetch,
        name=target.queue,
    )
    figures: dict[str, Any] = {"driver": target.driver, "parallelism": options.parallelism}
    try:
        await empty(queue)
        await enqueue_one_by_one(queue, min(200, options.jobs))  # warm up connections
        await empty(queue)
        figures["enqueue"] = await enqueue_one_by_one(queue, options.jobs)
        await empty(queue)
        figures["enqueue_many"] = await enqueue_many(queue, options.jobs)
        figures["drain"] = await drain(target, queue, 1, options.parallelism, options.prefetch)
        if target.driver == "redis":
            for processes in options.scaling:
                await enqueue_many(queue, options.jobs)
                figures[f"drain_{processes}p"] = await drain(
                    target, queue, processes, options.parallelism, options.prefetch
                )
        await empty(queue)
        queue = await _fresh_queue(queue, target)  # lateness listens in-process for in_process
        figures["lateness"] = await lateness(target, queue, options.samples, options.defer_ms)
    finally:
        await empty(queue)
        await queue.close()
    return figures


async def _fresh_queue(queue: cq.Queue, target: Target) -> cq.Queue:
    if target.driver != "in_process":
        return queue
    fresh = cq.Queue(queue.driver, parallelism=queue.settings.parallelism, name=target.queue)
    return fresh


def measure_peer(peer: str, options: argparse.Namespace) -> dict[str, Any]:
    """Run the workloads on one peer library, in the peers' virtualenv; n/a when it fails."""
    command = [
        options.peers_python,
        str(BENCH_DIR / "peers" / "run_peer.py"),
        peer,
        "--redis-url",
        options.redis_url,
        "--jobs",
        str(options.peer_jobs or options.jobs),
        "--samples",
        str(options.samples),
        "--defer-ms",
        str(options.defer_ms),
    ]
    print(f"-- {peer}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=options.peer_timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"peer": peer, "error": f"timed out after {options.peer_timeout}s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"peer": peer, "error": tail[:200]}
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def machine() -> dict[str, Any]:
    """Describe where the figures were measured."""
    redis_version = ""
    try:
        info = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        )
        redis_version = info.stdout.split("v=")[1].split()[0] if "v=" in info.stdout else ""
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis_server": redis_version,
        "load_average": os.getloadavg(),
    }


async def run(options: argparse.Namespace) -> dict[str, Any]:
    """Measure every selected driver, then the peers."""
    results: dict[str, Any] = {"machine": machine(), "settings": _settings(options)}
    results["corequeue"] = []
    with tempfile.TemporaryDirectory(prefix="corequeue-bench-") as scratch:
        for driver in options.drivers:
            url = _url_of(driver, options, Path(scratch))
            if url is None:
                print(f"-- {driver}: no server given, skipped", file=sys.stderr)
                continue
            print(f"-- corequeue {driver}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            figures = await measure_driver(Target(driver, url), options)
            figures["seconds"] = time.perf_counter() - started
            results["corequeue"].append(figures)
    results["peers"] = [measure_peer(peer, options) for peer in options.peers]
    results["machine"]["load_average_after"] = os.getloadavg()
    return results


def _url_of(driver: str, options: argparse.Namespace, scratch: Path) -> str | None:
    if driver == "redis":
        return str(options.redis_url) if options.redis_url else None
    if driver == "postgres":
        return str(options.postgres_dsn) if options.postgres_dsn else None
    if driver == "sqlite":
        return str(scratch / "bench.db")
    return ""


def _settings(options: argparse.Namespace) -> dict[str, Any]:
    return {
        "jobs": options.jobs,
        "parallelism": options.parallelism,
        "prefetch": options.prefetch,
        "lateness_samples": options.samples,
        "defer_ms": options.defer_ms,
        "scaling": options.scaling,
    }


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Read the command line of `bench.py` (measure) or `bench.py worker` (a worker process)."""
    if argv[:1] == ["worker"]:
        worker = argparse.ArgumentParser(prog="bench.py worker")
        worker.add_argument("--driver", required=True)
        worker.add_argument("--url", default="")
        worker.add_argument("--queue", required=True)
        worker.add_argument("--mode", default="drain")
        worker.add_argument("--parallelism", type=int, default=100)
        worker.add_argument("--prefetch", type=int, default=0)
        options = worker.parse_args(argv[1:])
        options.command = "worker"
        return options
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("COREQUEUE_BENCH_REDIS_URL"))
    parser.add_argument("--postgres-dsn", default=os.environ.get("COREQUEUE_BENCH_POSTGRES_DSN"))
    parser.add_argument("--drivers", type=_names(DRIVERS), default=list(DRIVERS))
    parser.add_argument("--peers", type=_names(PEERS), default=[], help="comma-separated, or all")
    parser.add_argument("--peers-python", default=str(BENCH_DIR / ".venv-peers/bin/python"))
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--peer-jobs", type=int, default=0, help="jobs per peer (default --jobs)")
    parser.add_argument("--peer-timeout", type=float, default=300.0)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--prefetch", type=int, default=0, help="Queue(prefetch=...)")
    parser.add_argument("--samples", type=int, default=300, help="deferred jobs for lateness")
    parser.add_argument("--defer-ms", type=int, default=300)
    parser.add_argument("--scaling", type=_counts, default=[2, 4], help="more worker processes")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    options = parser.parse_args(argv)
    options.command = "run"
    return options


def _names(known: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        names = list(known) if text == "all" else [n for n in text.split(",") if n]
        unknown = set(names) - set(known)
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(sorted(unknown))}")
        return names

    return parse


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


def main(argv: list[str]) -> None:
    """Measure and report, or run as a worker process."""
    options = parse_arguments(argv)
    if options.command == "worker":
        target = Target(options.driver, options.url, options.queue)
        asyncio.run(run_worker(target, options.parallelism, options.prefetch))
        return
    results = asyncio.run(run(options))
    path = write_json(results, options.results)
    print_table(results)
    print(f"results: {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
