"""The corequeue benchmark: enqueue, bursts, drain and lateness for every driver, and its peers.

Run it through `bench/run`, which starts Redis and PostgreSQL on loopback and, with `--peers`,
installs the peer libraries in virtualenvs of their own. Not a test: figures depend on the
machine.

    bench/run                       # every corequeue driver
    bench/run --peers               # the same workloads on Dramatiq, Huey, Taskiq, ... too
    bench/run --scale               # + cost at scale: a million jobs per driver (minutes)
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
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from corequeue_workloads import (
    Workload,
    attempt,
    drain,
    drain_io,
    empty,
    enqueue_many,
    enqueue_one_by_one,
    fill,
    kept_result_bytes,
    lateness,
)
from enqueue_workloads import burst, dispatch_sync_rate, raw_round_trips
from report import print_report, write_json
from scale import measure_scale
from worker import Target, WorkerOptions, make_driver, run_worker

import corequeue as cq

BENCH_DIR = Path(__file__).resolve().parent
PEERS_FILE = BENCH_DIR / "peers" / "peers.txt"
DRIVERS = ("redis", "sqlite", "postgres", "in_process")
MEMORY_PEERS = ("rq", "arq", "huey")  # peers whose Redis memory per job is measured at scale


async def measure_driver(target: Target, options: argparse.Namespace) -> dict[str, Any]:
    """Run every workload on one driver and return its figures."""
    queue = cq.Queue(
        make_driver(target),
        parallelism=options.parallelism,
        prefetch=options.prefetch,
        name=target.queue,
    )
    worker = WorkerOptions(options.parallelism, options.prefetch)
    figures: dict[str, Any] = {"driver": target.driver, "parallelism": options.parallelism}
    try:
        await empty(queue)
        await enqueue_one_by_one(queue, min(200, options.jobs))  # warm up connections
        for name, workload in _workloads(target, queue, worker, options):
            await empty(queue)
            figures[name] = await attempt(f"{target.driver} {name}", workload)
    finally:
        await empty(queue)
        await queue.close()
    return figures


def _workloads(
    target: Target, queue: cq.Queue, worker: WorkerOptions, options: argparse.Namespace
) -> list[tuple[str, Workload]]:
    """Name every workload of one driver, in the order they run, each on an emptied queue."""
    jobs = options.jobs
    steps: list[tuple[str, Workload]] = [
        ("enqueue", partial(enqueue_one_by_one, queue, jobs)),
        ("dispatch_sync", partial(dispatch_sync_rate, target, jobs)),
        ("enqueue_many", partial(enqueue_many, queue, jobs)),
        ("drain", partial(_filled_drain, target, queue, 1, worker, jobs)),
    ]
    if options.keep_results:
        keeping = replace(worker, keep_results_seconds=3600)
        steps.append(
            ("drain_keep_results", partial(_filled_drain, target, queue, 1, keeping, jobs))
        )
        if target.driver == "redis":
            steps.append(("kept_result_bytes", partial(kept_result_bytes, target, queue, jobs)))
    if target.driver == "redis":
        steps.append(("raw", partial(raw_round_trips, queue, target.url, jobs)))
        for n in options.scaling:
            steps.append((f"drain_{n}p", partial(_filled_drain, target, queue, n, worker, jobs)))
    if options.redis_url:
        io_worker = replace(worker, io_url=options.redis_url)
        steps.append(("drain_io", partial(_filled_drain_io, target, queue, io_worker, jobs)))
    steps.append(("burst", partial(burst, queue, options.burst)))
    late = partial(lateness, target, queue, options.samples, options.defer_ms)
    steps.append(("lateness", late))
    if options.scale and target.driver != "in_process":  # its jobs live in the worker itself
        steps.append(("scale", partial(measure_scale, target, queue, options.scale_jobs, worker)))
    return steps


async def _filled_drain(
    target: Target, queue: cq.Queue, processes: int, worker: WorkerOptions, jobs: int
) -> float:
    await fill(queue, jobs)
    return await drain(target, queue, processes, worker)


async def _filled_drain_io(
    target: Target, queue: cq.Queue, worker: WorkerOptions, jobs: int
) -> dict[str, float]:
    await fill(queue, jobs)
    return await drain_io(target, queue, worker)


def measure_peer(peer: str, options: argparse.Namespace) -> dict[str, Any]:
    """Run the workloads on one peer library, in its own virtualenv; n/a when it fails."""
    arguments = [
        "--jobs",
        str(options.peer_jobs or options.jobs),
        "--samples",
        str(options.samples),
    ]
    arguments += ["--defer-ms", str(options.defer_ms)]
    print(f"-- {peer}", file=sys.stderr, flush=True)
    return _run_peer(peer, arguments, options, options.peer_timeout)


def measure_peer_memory(peer: str, options: argparse.Namespace) -> dict[str, Any]:
    """Measure one peer's Redis memory per waiting and per delayed job; n/a when it fails."""
    jobs = min(options.scale_jobs, options.scale_peer_jobs)
    print(f"-- {peer}: memory per job", file=sys.stderr, flush=True)
    timeout = max(options.peer_timeout, jobs / 100)
    return _run_peer(peer, ["--memory", str(jobs)], options, timeout)


def _run_peer(
    peer: str, arguments: list[str], options: argparse.Namespace, timeout: float
) -> dict[str, Any]:
    venv = options.peers_venvs / f".venv-peers-{peer_venvs()[peer]}"
    failed = venv / "failed" / peer
    if failed.exists():
        return {"peer": peer, "error": f"not installed: {failed.read_text().strip()[:200]}"}
    script = str(BENCH_DIR / "peers" / "run_peer.py")
    command = [str(venv / "bin" / "python"), script, peer, "--redis-url", options.redis_url]
    try:
        done = subprocess.run(
            command + arguments, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"peer": peer, "error": f"timed out after {timeout:.0f}s"}
    except OSError as exc:
        return {"peer": peer, "error": f"{venv.name}: {exc.strerror}"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"peer": peer, "error": tail[:200]}
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def peer_venvs() -> dict[str, str]:
    """Return each peer's virtualenv name (`a`, `b`, ...), in the order of bench/peers/peers.txt."""
    venvs = {}
    for line in PEERS_FILE.read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            venvs[fields[0]] = fields[1]
    return venvs


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
    if options.scale:
        memory_peers = [peer for peer in options.peers if peer in MEMORY_PEERS]
        results["peer_memory"] = [measure_peer_memory(peer, options) for peer in memory_peers]
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
        "burst": options.burst,
        "scale_jobs": options.scale_jobs if options.scale else None,
        "scale_peer_jobs": min(options.scale_jobs, options.scale_peer_jobs),
    }


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Read the command line of `bench.py` (measure) or `bench.py worker` (a worker process)."""
    if argv[:1] == ["worker"]:
        return _worker_arguments(argv[1:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("COREQUEUE_BENCH_REDIS_URL"))
    parser.add_argument("--postgres-dsn", default=os.environ.get("COREQUEUE_BENCH_POSTGRES_DSN"))
    parser.add_argument("--drivers", type=_names(DRIVERS), default=list(DRIVERS))
    peers = tuple(peer_venvs())
    parser.add_argument("--peers", type=_names(peers), default=[], help="comma-separated, or all")
    parser.add_argument(
        "--peers-venvs", type=Path, default=BENCH_DIR, help="folder of .venv-peers-<name>"
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--peer-jobs", type=int, default=0, help="jobs per peer (default --jobs)")
    parser.add_argument("--peer-timeout", type=float, default=600.0)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--prefetch", type=int, default=0, help="Queue(prefetch=...)")
    parser.add_argument(
        "--keep-results",
        action="store_true",
        help="also drain with Queue(keep_results=1h), and on Redis the memory per kept result",
    )
    parser.add_argument("--samples", type=int, default=300, help="deferred jobs for lateness")
    parser.add_argument("--defer-ms", type=int, default=300)
    parser.add_argument("--scaling", type=_counts, default=[2, 4], help="more worker processes")
    parser.add_argument("--burst", type=int, default=10_000, help="concurrent dispatches")
    parser.add_argument("--scale", action="store_true", help="cost at scale (takes minutes)")
    parser.add_argument("--scale-jobs", type=int, default=1_000_000, help="jobs at scale")
    parser.add_argument(
        "--scale-peer-jobs", type=int, default=100_000, help="jobs per peer memory figure"
    )
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    options = parser.parse_args(argv)
    options.command = "run"
    return options


def _worker_arguments(argv: list[str]) -> argparse.Namespace:
    worker = argparse.ArgumentParser(prog="bench.py worker")
    worker.add_argument("--driver", required=True)
    worker.add_argument("--url", default="")
    worker.add_argument("--queue", required=True)
    worker.add_argument("--parallelism", type=int, default=100)
    worker.add_argument("--prefetch", type=int, default=0)
    worker.add_argument("--io-url", default="", help="one Redis INCR per job, own client")
    worker.add_argument("--expect", type=int, default=0, help='say "done" after this many')
    worker.add_argument("--rss-at", type=_counts, default=[], help="read VmRSS at these")
    worker.add_argument(
        "--keep-results",
        dest="keep_results_seconds",
        type=float,
        default=0.0,
        help="Queue(keep_results=SECONDS)",
    )
    options = worker.parse_args(argv)
    options.command = "worker"
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
        worker = WorkerOptions(
            options.parallelism,
            options.prefetch,
            io_url=options.io_url,
            expect=options.expect,
            rss_at=tuple(options.rss_at),
            keep_results_seconds=options.keep_results_seconds,
        )
        asyncio.run(run_worker(target, worker))
        return
    results = asyncio.run(run(options))
    path = write_json(results, options.results)
    print_report(results)
    print(f"results: {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
