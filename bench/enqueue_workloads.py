"""Enqueue workloads beyond one awaited dispatch at a time: bursts, sync code, raw redis-py.

- a burst: thousands of concurrent `await queue.dispatch(...)` from one event loop, as a busy
  ASGI app makes them; every one must succeed and be stored;
- `dispatch_sync` called one after the other from plain synchronous code (a thread with no
  event loop, as in a Django or Flask view);
- the references for one call at a time on Redis: one redis-py EVALSHA round trip of a script
  that only returns, and of corequeue's own push script, given the same KEYS and ARGV as a
  dispatch, in the same process, timed in turns with dispatch and dispatch_sync.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from corequeue_workloads import percentile
from worker import Target, make_driver, payload

import corequeue as cq

WARM_UP = 200  # calls made before timing, so connections and scripts are ready
ERRORS_KEPT = 5  # distinct failure messages kept per burst


async def burst(queue: cq.Queue, count: int) -> dict[str, Any]:
    """Make `count` concurrent dispatches from this event loop; return rate, latency, failures.

    Latency of one dispatch runs from its call to its return. `stored` is what the store holds
    afterwards: every dispatch that returned must be there.
    """
    latencies_ms: list[float] = []

    async def dispatch_one(data: dict[str, Any]) -> None:
        start = time.perf_counter()
        await queue.dispatch(data)
        latencies_ms.append((time.perf_counter() - start) * 1000)

    payloads = [payload(n) for n in range(count)]
    start = time.perf_counter()
    outcomes = await asyncio.gather(*(dispatch_one(d) for d in payloads), return_exceptions=True)
    elapsed = time.perf_counter() - start
    errors = Counter(_describe(o) for o in outcomes if isinstance(o, BaseException))
    ordered = sorted(latencies_ms) or [float("nan")]
    return {
        "jobs": count,
        "rate": count / elapsed,
        "p50": percentile(ordered, 0.50),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
        "failed": sum(errors.values()),
        "errors": dict(errors.most_common(ERRORS_KEPT)),
        "stored": (await queue.info()).waiting,
    }


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


async def dispatch_sync_rate(target: Target, count: int) -> float:
    """Call `dispatch_sync` `count` times in a row from a thread with no event loop; jobs/s.

    The queue is a new one on the same store, as a web process would build it; it is closed
    on this loop afterwards.
    """
    queue = cq.Queue(make_driver(target), name=target.queue)
    try:
        return await asyncio.to_thread(_dispatch_sync_loop, queue, count)
    finally:
        await queue.close()


def _dispatch_sync_loop(queue: cq.Queue, count: int) -> float:
    for n in range(min(WARM_UP, count)):
        queue.dispatch_sync(payload(n))
    payloads = [payload(n) for n in range(count)]
    start = time.perf_counter()
    for data in payloads:
        queue.dispatch_sync(data)
    return count / (time.perf_counter() - start)


ROUNDS = 5  # raw round trips and dispatches are timed in turns, so both meet the same noise


async def raw_round_trips(queue: cq.Queue, url: str, count: int) -> dict[str, float]:
    """Time one call at a time, raw redis-py beside corequeue, async and sync, in turns.

    Two references, each one redis-py EVALSHA per call, given the push script's KEYS and an
    ARGV of the same sizes (now, id, delay, envelope, priority, group):
    - `evalsha`: a script that only returns: the round trip alone;
    - `evalsha_push`: corequeue's own push script, loaded by redis-py: the same round trip and
      the same work in Redis as a dispatch, so what a dispatch costs beyond it is corequeue's.
    `dispatch` and `dispatch_sync` are timed in the same turns (ROUNDS of them, medians kept).
    Returns calls per second of each.
    """
    from corequeue.drivers.redis import RedisDriver
    from corequeue.drivers.redis.scripts import Script

    driver = queue.driver
    if not isinstance(driver, RedisDriver):
        raise TypeError(f"raw round trips need the Redis driver, got {type(driver).__name__}")
    keys = driver.keys.for_script()
    envelope = queue.persist(payload(0))[0].to_bytes()
    push_source = Script("push", driver.keys.slot, len(keys)).source
    per_round = max(1, count // ROUNDS)
    rates: dict[str, list[float]] = {}
    sync_queue = cq.Queue(make_driver(Target("redis", url, queue.name)), name=queue.name)
    try:
        for _ in range(ROUNDS):
            turn = {
                "evalsha": await _async_evalsha(url, "return 1", keys, envelope, per_round),
                "evalsha_push": await _async_evalsha(url, push_source, keys, envelope, per_round),
                "dispatch": await _dispatch_rate(queue, per_round),
                "evalsha_sync": await asyncio.to_thread(
                    _sync_evalsha, url, "return 1", keys, envelope, per_round
                ),
                "evalsha_push_sync": await asyncio.to_thread(
                    _sync_evalsha, url, push_source, keys, envelope, per_round
                ),
                "dispatch_sync": await asyncio.to_thread(
                    _dispatch_sync_loop, sync_queue, per_round
                ),
            }
            for name, rate in turn.items():
                rates.setdefault(name, []).append(rate)
    finally:
        await sync_queue.close()
    figures = {name: statistics.median(values) for name, values in rates.items()}
    return figures | {"keys": float(len(keys)), "envelope_bytes": float(len(envelope))}


async def _dispatch_rate(queue: cq.Queue, count: int) -> float:
    payloads = [payload(n) for n in range(count)]
    start = time.perf_counter()
    for data in payloads:
        await queue.dispatch(data)
    return count / (time.perf_counter() - start)


def _push_arguments(keys: tuple[str, ...], envelope: bytes) -> list[Any]:
    """The push script's KEYS and ARGV for one new job (a fresh id, due now)."""
    return [len(keys), *keys, "", uuid.uuid4().hex, "0", envelope, "0", ""]


async def _async_evalsha(
    url: str, source: str, keys: tuple[str, ...], envelope: bytes, count: int
) -> float:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    command: Callable[..., Awaitable[Any]] = client.execute_command  # untyped in redis-py
    try:
        sha = await command("SCRIPT", "LOAD", source)
        for _ in range(min(WARM_UP, count)):
            await command("EVALSHA", sha, *_push_arguments(keys, envelope))
        calls = [_push_arguments(keys, envelope) for _ in range(count)]
        start = time.perf_counter()
        for arguments in calls:
            await command("EVALSHA", sha, *arguments)
        return count / (time.perf_counter() - start)
    finally:
        await client.aclose()


def _sync_evalsha(
    url: str, source: str, keys: tuple[str, ...], envelope: bytes, count: int
) -> float:
    from redis import Redis

    client = Redis.from_url(url)
    command: Callable[..., Any] = client.execute_command  # untyped in redis-py
    try:
        sha = command("SCRIPT", "LOAD", source)
        for _ in range(min(WARM_UP, count)):
            command("EVALSHA", sha, *_push_arguments(keys, envelope))
        calls = [_push_arguments(keys, envelope) for _ in range(count)]
        start = time.perf_counter()
        for arguments in calls:
            command("EVALSHA", sha, *arguments)
        return count / (time.perf_counter() - start)
    finally:
        client.close()
