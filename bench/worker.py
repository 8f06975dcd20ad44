"""What runs inside a benchmark worker process (`bench.py worker`), and what it shares with the
parent: which driver and queue (Target), how the listener runs (WorkerOptions), the payload.

A worker connects, says "ready", starts consuming at the first line on stdin and stops at the
second, then prints what its listener recorded as one JSON line. Told how many jobs to expect,
it also says "done" once its listener has run them all.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import corequeue as cq
from corequeue.drivers.base import Driver

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Target:
    """Which corequeue driver to measure and where its store is."""

    driver: str  # "in_process", "sqlite", "redis" or "postgres"
    url: str = ""  # Redis URL, PostgreSQL DSN or SQLite file; unused for in_process
    queue: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:12]}")

    def as_args(self) -> list[str]:
        """Return the worker command-line arguments naming this target."""
        return ["--driver", self.driver, "--url", self.url, "--queue", self.queue]

    @property
    def io_key(self) -> str:
        """Return the Redis key the I/O listener increments for this queue."""
        return f"bench-io:{self.queue}"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker process (or an in-process drain) runs its listener."""

    parallelism: int = 100
    prefetch: int = 0
    io_url: str = ""  # when set, the listener makes one Redis INCR per job with its own client
    expect: int = 0  # when set, say "done" once the listener has run this many jobs
    rss_at: tuple[int, ...] = ()  # jobs counts at which to read the worker's VmRSS
    keep_results_seconds: float = 0.0  # when set, Queue(keep_results=...): every result kept

    def as_args(self) -> list[str]:
        """Return the worker command-line arguments for these options."""
        return [
            "--parallelism", str(self.parallelism), "--prefetch", str(self.prefetch),
            "--io-url", self.io_url, "--expect", str(self.expect),
            "--rss-at", ",".join(str(n) for n in self.rss_at),
            "--keep-results", str(self.keep_results_seconds),
        ]  # fmt: skip

    @property
    def keep_results(self) -> timedelta | None:
        """The queue's `keep_results`, or None when results are not kept."""
        seconds = self.keep_results_seconds
        return timedelta(seconds=seconds) if seconds > 0 else None


def make_driver(target: Target) -> Driver:
    """Return a fresh driver of `target` (one per process)."""
    if target.driver == "in_process":
        return cq.InProcessDriver()
    if target.driver == "sqlite":
        return cq.SQLiteDriver(target.url, name=target.queue)
    if target.driver == "redis":
        from corequeue.drivers.redis import RedisDriver

        return RedisDriver.from_url(target.url, name=target.queue)
    if target.driver == "postgres":
        from corequeue.drivers.postgres import PostgresDriver

        return PostgresDriver(target.url, name=target.queue)
    raise ValueError(f"unknown driver {target.driver!r}")


def payload(n: int) -> dict[str, Any]:
    """Return the small dict payload every job carries."""
    return {"to": "user@example.com", "subject": "welcome", "n": n}


# --- inside a worker process -------------------------------------------------------------------


class Recorder:
    """What a worker's listener does and records: how many jobs ran, and deferred lateness.

    A deferred job carries `due_ns`, its exact due instant; one that starts before it is early.
    With `io`, the listener first awaits that call (one Redis round trip of its own). At the job
    counts in `rss_at` it reads the process's VmRSS; at `expect` it says "done" on stdout.
    """

    def __init__(
        self,
        io: Callable[[], Awaitable[Any]] | None = None,
        expect: int = 0,
        rss_at: Collection[int] = (),
    ) -> None:
        self.handled = 0
        self.late_ms: list[float] = []
        self.early = 0
        self.rss_kb: dict[str, int] = {}
        self._io = io
        self._expect = expect
        self._rss_at = frozenset(rss_at)
        self._marks = self._rss_at | {expect}

    async def handle(self, job: cq.ReceivedJob) -> None:
        """The listener: count the job, and note its lateness when it was deferred."""
        if self._io is not None:
            await self._io()
        self.handled += 1
        if self.handled in self._marks:
            self._mark()
        due_ns = job.data.get("due_ns")
        if due_ns is not None:
            now_ns = time.time_ns()
            self.late_ms.append((now_ns - due_ns) / 1_000_000)
            if now_ns < due_ns:
                self.early += 1

    def _mark(self) -> None:
        if self.handled in self._rss_at:
            self.rss_kb[str(self.handled)] = vm_rss_kb()
        if self.handled == self._expect:
            sys.stdout.write("done\n")
            sys.stdout.flush()

    def report(self) -> dict[str, Any]:
        """Return what was recorded, as JSON-ready data."""
        return {
            "handled": self.handled,
            "late_ms": self.late_ms,
            "early": self.early,
            "rss_kb": self.rss_kb,
        }


def vm_rss_kb() -> int:
    """Return this process's resident set size in KiB (Linux: VmRSS of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def run_worker(target: Target, options: WorkerOptions) -> None:
    """Body of `bench.py worker`: ready, wait for "go", consume until "stop", then report."""
    queue = cq.Queue(
        make_driver(target),
        parallelism=options.parallelism,
        prefetch=options.prefetch,
        name=target.queue,
        keep_results=options.keep_results,
    )
    io_client = redis_client(options.io_url) if options.io_url else None
    recorder = Recorder(io_call(io_client, target), options.expect, options.rss_at)
    queue.subscribe(cq.listen(dict, recorder.handle))
    await queue.info()  # connect before saying ready
    if io_client is not None:
        await io_client.ping()
    await _say("ready")
    await _read_line()
    consuming = asyncio.create_task(queue.consume(handle_signals=False))
    await _read_line()
    consuming.cancel()
    await asyncio.gather(consuming, return_exceptions=True)
    await queue.close()
    if io_client is not None:
        await io_client.aclose()
    await _say(json.dumps(recorder.report()))


def redis_client(url: str) -> Redis:
    """Return a redis-py asyncio client of `url` (imported here: only some workloads need it)."""
    from redis.asyncio import Redis

    return Redis.from_url(url)


def io_call(client: Redis | None, target: Target) -> Callable[[], Awaitable[Any]] | None:
    """Return the listener's own Redis call (one INCR), or None without a client."""
    if client is None:
        return None
    key = target.io_key
    return lambda: client.incr(key)


async def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _read_line() -> str:
    read: Callable[[], str] = sys.stdin.readline
    waiting: Awaitable[str] = asyncio.get_running_loop().run_in_executor(None, read)
    return await waiting
