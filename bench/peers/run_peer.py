"""Run the benchmark's workloads on one peer library; print one JSON line of figures.

Runs in the peer's own virtualenv (bench/.venv-peers-<name>, see peers.txt), never in
corequeue's. Each peer gets a Redis database of its own (BENCH_PEER_DB, default 15) that must
be empty, and is emptied afterwards.

    bench/.venv-peers-a/bin/python bench/peers/run_peer.py dramatiq --redis-url redis://...
    bench/.venv-peers-b/bin/python bench/peers/run_peer.py arq --redis-url ... --memory 100000

The workloads: enqueue (from plain sync code when the peer's enqueue is a sync call), drain,
drain of jobs whose task makes one Redis call of its own, and deferred lateness; or, with
`--memory N`, the server's used_memory per waiting and per delayed job over N jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from recorder import IO_KEY

PEERS_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
LATER_SECONDS = 86_400.0  # delayed jobs in the memory figure stay delayed


def payload(n: int) -> dict[str, Any]:
    """The same small dict payload as corequeue's jobs."""
    return {"to": "user@example.com", "subject": "welcome", "n": n}


class Worker:
    """The peer's own worker command, as a child process recording into `result`."""

    def __init__(self, command: list[str], env: dict[str, str], result: Path) -> None:
        self.result = result
        self.process = subprocess.Popen(
            command,
            cwd=PEERS_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(result.with_suffix(".log"), "w"),  # noqa: SIM115 (closed with the child)
            start_new_session=True,
        )

    def wait_for(self, path: Path, timeout: float) -> bool:
        """Wait until `path` exists; False if the worker died or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """Stop the worker and every process it started."""
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self) -> str:
        lines = self.result.with_suffix(".log").read_text(errors="replace").strip().splitlines()
        return lines[-1][:200] if lines else "worker stopped"


def start_worker(peer: Any, url: str, scratch: Path, name: str, expect: int) -> Worker:
    """Start the peer's worker; it reports into scratch/name.json after `expect` jobs."""
    result = scratch / f"{name}.json"
    env = dict(os.environ, BENCH_REDIS_URL=url, BENCH_RESULT=str(result))
    env |= {"BENCH_EXPECT": str(expect), "PYTHONPATH": str(PEERS_DIR)}
    return Worker(peer.worker_command(BIN), env, result)


async def measure(peer: Any, url: str, options: argparse.Namespace) -> dict[str, Any]:
    """Enqueue, drain, drain with I/O in the task, then deferred lateness with an idle worker."""
    figures: dict[str, Any] = {"peer": options.peer, "worker": peer.WORKER}
    figures |= await timed_enqueue(peer, [payload(n) for n in range(options.jobs)])
    with tempfile.TemporaryDirectory(prefix=f"bench-{options.peer}-") as folder:
        scratch = Path(folder)
        figures["drain"] = drain(peer, url, scratch, "drain", options)
        empty(url)
        figures["drain_io"] = await drain_io(peer, url, scratch, options)
        empty(url)
        figures["lateness"] = await lateness(peer, url, scratch, options)
    return figures


async def timed_enqueue(peer: Any, payloads: list[dict[str, Any]]) -> dict[str, float]:
    """Time the peer's one-call enqueue of every payload; jobs per second.

    A peer whose enqueue is a sync call (`enqueue_sync`) is timed from plain synchronous code,
    a thread with no event loop, as corequeue's `dispatch_sync` is.
    """
    start = time.perf_counter()
    if hasattr(peer, "enqueue_sync"):
        await asyncio.to_thread(peer.enqueue_sync, payloads)
        rate = len(payloads) / (time.perf_counter() - start)
        return {"enqueue": rate, "enqueue_sync": rate}
    await peer.enqueue(payloads)
    return {"enqueue": len(payloads) / (time.perf_counter() - start)}


def drain(peer: Any, url: str, scratch: Path, name: str, options: argparse.Namespace) -> float:
    """Start the peer's worker on the filled queue; jobs per second, first to last job."""
    worker = start_worker(peer, url, scratch, name, options.jobs)
    try:
        if not worker.wait_for(worker.result, options.timeout):
            raise RuntimeError(f"{name} did not finish: {worker.log_tail()}")
    finally:
        worker.stop()
    report = json.loads(worker.result.read_text())
    rate: float = report["count"] / (report["last"] - report["first"])
    return rate


async def drain_io(
    peer: Any, url: str, scratch: Path, options: argparse.Namespace
) -> dict[str, Any]:
    """Drain jobs whose task makes one Redis INCR with its own client; n/a when it fails."""
    try:
        await peer.enqueue([payload(n) | {"io": True} for n in range(options.jobs)])
        rate = drain(peer, url, scratch, "io", options)
    except Exception as exc:  # the other figures of this peer still count
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    calls = int(redis.Redis.from_url(url).get(IO_KEY) or 0)
    if calls < options.jobs:
        return {"error": f"{calls} of {options.jobs} task calls reached Redis"}
    return {"rate": rate, "calls": calls}


async def memory(peer: Any, url: str, jobs: int) -> dict[str, float]:
    """Return the growth of the server's used_memory per waiting and per delayed job."""
    client = redis.Redis.from_url(url)
    payloads = [payload(n) for n in range(jobs)]
    before = used_memory(client)
    await peer.enqueue(payloads)
    waiting = (used_memory(client) - before) / jobs
    empty(url)
    before = used_memory(client)
    for data in payloads:
        await peer.defer(data, LATER_SECONDS)
    delayed = (used_memory(client) - before) / jobs
    empty(url)
    return {"waiting": waiting, "delayed": delayed}


def used_memory(client: redis.Redis) -> int:
    """Return the server's `used_memory` in bytes."""
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


async def lateness(
    peer: Any, url: str, scratch: Path, options: argparse.Namespace
) -> dict[str, float]:
    """Defer jobs to an idle worker, as corequeue's benchmark does; lateness figures in ms."""
    worker = start_worker(peer, url, scratch, "late", options.samples)
    try:
        await peer.enqueue([{"warm": True}])
        if not worker.wait_for(worker.result.with_name("late.json.warm"), 60):
            raise RuntimeError(f"worker did not start: {worker.log_tail()}")
        await asyncio.sleep(0.5)  # idle, waiting for work
        rng = random.Random(8)
        for n in range(options.samples):
            # The exact due instant: a job that starts before it is early, by however little.
            data = payload(n) | {"due_ns": time.time_ns() + options.defer_ms * 1_000_000}
            await peer.defer(data, options.defer_ms / 1000)
            await asyncio.sleep(rng.uniform(0.002, 0.012))
        if not worker.wait_for(worker.result, options.timeout):
            raise RuntimeError(f"deferred jobs did not all run: {worker.log_tail()}")
    finally:
        worker.stop()
    report = json.loads(worker.result.read_text())
    ordered = sorted(report["late_ms"])
    return {
        "p50": percentile(ordered, 0.5),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
        "min": ordered[0],
        "early": report["early"],
        "samples": len(ordered),
    }


def percentile(ordered: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an already sorted list."""
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def empty(url: str) -> None:
    """Empty the peer's database."""
    redis.Redis.from_url(url).flushdb()


def main() -> None:
    """Measure one peer and print its figures as one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("peer")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--defer-ms", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--memory", type=int, default=0, help="memory per job over N jobs")
    options = parser.parse_args()
    base = options.redis_url.rsplit("/", 1)[0] if options.redis_url.count("/") > 2 else ""
    url = f"{base or options.redis_url.rstrip('/')}/{os.environ.get('BENCH_PEER_DB', '15')}"
    if redis.Redis.from_url(url).dbsize():
        raise SystemExit(f"{url} is not empty: the peers need a database of their own")
    os.environ["BENCH_REDIS_URL"] = url
    sys.path.insert(0, str(PEERS_DIR))
    peer = importlib.import_module(f"peer_{options.peer}")
    try:
        if options.memory:
            figures = {
                "peer": options.peer,
                "memory": asyncio.run(memory(peer, url, options.memory)),
            }
        else:
            figures = asyncio.run(measure(peer, url, options))
    finally:
        empty(url)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
