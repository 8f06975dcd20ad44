"""What every peer's task calls: counts jobs and deferred lateness, then writes a report.

Set by the runner in the worker's environment: BENCH_RESULT (the report's path) and
BENCH_EXPECT (how many jobs to wait for). A job whose payload has "warm" only marks the worker
as up (BENCH_RESULT + ".warm"); the others count. A deferred job carries `due_ns`, its exact
due instant; one that starts before it is early. Threads and processes may call `hit`.

A job whose payload has "io" first makes one Redis call of its own, an INCR of `IO_KEY` with
the worker process's own client (`io_sync` from threaded peers, `io_async` from async ones),
as corequeue's I/O listener does.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

IO_KEY = "bench-io"

_lock = threading.Lock()
_state: dict[str, Any] = {"count": 0, "first": None, "late_ms": [], "early": 0}
_clients: dict[str, Any] = {}  # this process's own Redis clients for I/O jobs, made on first use


def io_sync() -> None:
    """Make the I/O job's Redis call with this process's own (thread-safe) sync client."""
    client = _clients.get("sync")
    if client is None:
        client = _clients.setdefault("sync", redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    client.incr(IO_KEY)


async def io_async() -> None:
    """Make the I/O job's Redis call with this process's own asyncio client."""
    client = _clients.get("async")
    if client is None:  # no await before it is stored: one client per worker process
        client = _clients["async"] = redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    await client.incr(IO_KEY)


def hit(payload: dict[str, Any]) -> None:
    """Record one job run now (the body of every peer's no-op task)."""
    now_ns = time.time_ns()
    now = now_ns / 1e9
    result = Path(os.environ["BENCH_RESULT"])
    if payload.get("warm"):
        result.with_name(result.name + ".warm").write_text("up", encoding="utf-8")
        return
    with _lock:
        _state["count"] += 1
        if _state["first"] is None:
            _state["first"] = now
        due_ns = payload.get("due_ns")
        if due_ns is not None:
            _state["late_ms"].append((now_ns - due_ns) / 1_000_000)
            if now_ns < due_ns:
                _state["early"] += 1
        if _state["count"] == int(os.environ["BENCH_EXPECT"]):
            report = dict(_state, last=time.time())
            partial = result.with_name(result.name + ".part")
            partial.write_text(json.dumps(report), encoding="utf-8")
            partial.rename(result)
