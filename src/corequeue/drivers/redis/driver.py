"""RedisDriver: the production driver, on Redis 6.2+ or Valkey, standalone, Sentinel or Cluster.

Every move between channels is one Lua script (the `*.lua` files beside this module), so no
step loses a job if a process dies between two commands. All keys of a queue carry one hash
tag and live in one Cluster slot, and every key a script touches is one of its KEYS (store
layout 2: envelopes are fields of the queue's `jobs` hash), so a reshard of that slot delays
a script (ASK, TRYAGAIN) but never cuts one off halfway. Times come from the Redis server's
clock inside the scripts (or from the `clock` given, in tests), in microseconds, so producers
and workers may disagree about the time and a job never runs before its exact due instant.

An idle `pop()` blocks on BLPOP of a token list that every push fills, so it wakes as soon as
a job arrives; while it waits, a local timer fires when the next delayed job is due and runs the
pop script itself, which ends the BLPOP through the pop's private wake-up list. Redis only
checks blocking timeouts every 1/hz seconds (100 ms by default), which is why due times are not
left to BLPOP's timeout.

Settlement is fenced: each pop stores a fresh token per reserved job in the queue's `tokens`
hash, and ack, fail, retry, renew and release compare it, in the same script as the move, with
the token the caller's copy carries. Every move out of `reserved` deletes the stored token.

Periodic schedules keep their last enqueued slot in the queue's `periodic` hash; one script
compares and advances it and pushes the slot's job.

`push_sync` (`Queue.dispatch_sync`) runs the push script with a synchronous redis-py client of
its own (see `sync.py`), with the KEYS and ARGV `push_many` builds. Every client the driver
builds from a URL keeps to `max_connections` and makes callers beyond it wait up to
`pool_timeout` (see `pools.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from redis.exceptions import ResponseError

from corequeue.drivers.base import (
    DEFAULT_LEASE,
    DEFAULT_POP_TIMEOUT,
    THROUGHPUT_HISTORY,
    Channel,
    ChannelConfig,
    Clock,
    GroupCounts,
    JobView,
    QueueInfo,
    Throughput,
    WorkerInfo,
    check_listing,
    check_pop_limit,
    instant_of_ms,
    interval_of,
    parse_channel,
    reloadable,
)
from corequeue.drivers.derived import LoopThread
from corequeue.drivers.finished import Pause, wait_finished
from corequeue.drivers.redis.connection import (
    AnyRedis,
    Clients,
    ClientSource,
    GivenSource,
    LoopClients,
    SyncRedis,
    UrlSource,
    execute,
    store_errors,
)
from corequeue.drivers.redis.keys import LAYOUT_VERSION, SCRIPT_KEY_COUNT, RedisKeys
from corequeue.drivers.redis.pools import DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_TIMEOUT, PoolLimits
from corequeue.drivers.redis.scripts import Script
from corequeue.drivers.redis.sync import SyncClient
from corequeue.drivers.redis.views import LIST_WINDOW, decode_job, kept_result, sixes, text, view
from corequeue.drivers.wakeup import Bell
from corequeue.errors import DecodeError, DriverError, InvalidOption, QueueEmpty
from corequeue.job import PersistedJob, new_token, to_ms
from corequeue.limits import HeldBack, Limits

logger = logging.getLogger(__name__)

PUSH_CHUNK: Final = 500
"""Jobs per push script; a batch of more is several scripts sent in one pipelined round trip."""

MAX_POP: Final = 1000
"""Most jobs one `pop_many()` call reserves."""

MIGRATE_BATCH: Final = 500
"""Jobs one `migrate()` script converts."""

_MAX_DELAY_US: Final = 2**52  # Lua numbers are doubles: exact integers end at 2**53
_MICROSECOND: Final = timedelta(microseconds=1)
_SCRIPTS: Final = ("ack", "cancel", "flush", "info", "pop", "push", "reload", "release", "renew")
_SCRIPTS_MORE: Final = ("settle", "inspect", "lookup", "delete", "requeue", "migrate")
_SCRIPTS_PERIODIC: Final = ("enqueue_slot",)
_SCRIPTS_FLOW: Final = ("pause", "groups")
_SCRIPTS_RESULTS: Final = ("complete", "prune")
RATE_STATE_KEPT: Final = timedelta(days=1)
"""How long `prune` keeps the rate state of a scope (a group) no pop has used, at least."""
_LAYOUT1_CHANNELS: Final = 5  # the channels store layout 1 had (completed came later)
_REFUSED: Final = "COREQUEUE_LAYOUT"  # how the scripts refuse a queue in another layout


class RedisDriver:
    """Stores a named queue in Redis: durable, shared by any number of producers and workers.

    Args:
        client: A redis-py asyncio client: `redis.asyncio.Redis` (standalone or from a
            Sentinel) or `redis.asyncio.cluster.RedisCluster`. The driver does not close it.
        name: The queue's name, used in the default keys `{app:env:<name>}:<channel>`.
        channels: The channel keys, instead of `ChannelConfig.for_queue(name, prefix)`; they
            must share one hash tag.
        prefix: The `app:env` part of the default keys.
        pop_timeout: How long `pop()` waits for a job before raising QueueEmpty.
        lease: How long a popped job stays reserved without a renewal.
        clock: Source of time for tests (a FakeClock); by default the Redis server's clock.
        blocking_client: A client for the blocking waits of `pop()`; by default a copy of
            `client` with its own connections (a Cluster client is shared: each of its calls
            takes its own connection).
        sync_client: A redis-py synchronous client (`redis.Redis`, or
            `redis.cluster.RedisCluster`) on the same server, for `push_sync`; the driver
            does not close it. Without one, `push_sync` runs the async push on a private event
            loop thread (`RedisDriver.from_url` builds a synchronous client itself).

    Example:
        >>> driver = RedisDriver.from_url("redis://localhost:6379/0", name="emails")
    """

    def __init__(
        self,
        client: AnyRedis,
        name: str = "default",
        *,
        channels: ChannelConfig | None = None,
        prefix: str = "app:env",
        pop_timeout: timedelta = DEFAULT_POP_TIMEOUT,
        lease: timedelta = DEFAULT_LEASE,
        clock: Clock | None = None,
        blocking_client: AnyRedis | None = None,
        sync_client: SyncRedis | None = None,
    ) -> None:
        self._setup(
            GivenSource(client, blocking_client, sync_client),
            name,
            channels or ChannelConfig.for_queue(name, prefix),
            pop_timeout,
            lease,
            clock,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        name: str = "default",
        *,
        cluster: bool = False,
        channels: ChannelConfig | None = None,
        prefix: str = "app:env",
        pop_timeout: timedelta = DEFAULT_POP_TIMEOUT,
        lease: timedelta = DEFAULT_LEASE,
        clock: Clock | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout: timedelta = DEFAULT_POOL_TIMEOUT,
        **client_options: Any,
    ) -> RedisDriver:
        """Return a driver that connects to `url` (see `corequeue.drivers.redis.connection`).

        The driver builds, for each event loop that uses it, a client for commands and one for
        the blocking waits of `pop()`, and one synchronous client for `push_sync`.

        Args:
            url: redis://, rediss://, unix://, redis+cluster://, redis+sentinel:// (and TLS
                forms); user and password (ACL) in the URL, the database in its path.
            name: The queue's name.
            cluster: Treat a redis:// or rediss:// URL as a node of a Redis Cluster.
            channels: See the class.
            prefix: See the class.
            pop_timeout: See the class.
            lease: See the class.
            clock: See the class.
            max_connections: Connections each client opens at most (a `max_connections` in
                the URL's query wins). A call that finds them all in use waits for one.
            pool_timeout: How long a call waits for a free connection before it raises
                StoreUnavailable, naming both settings.
            **client_options: Passed to the redis-py clients (`socket_timeout`, `retry`, ...).

        Raises:
            InvalidOption: A bad URL, or limits that are not positive.

        Example:
            >>> RedisDriver.from_url("rediss://worker:secret@cache:6380/2", name="emails")
            RedisDriver('rediss://worker@cache:6380/2', name='emails')
        """
        driver = cls.__new__(cls)
        limits = PoolLimits(max_connections, pool_timeout)
        source = UrlSource(url, cluster=cluster, options=client_options, limits=limits)
        channels = channels or ChannelConfig.for_queue(name, prefix)
        driver._setup(source, name, channels, pop_timeout, lease, clock)
        return driver

    def _setup(
        self,
        source: ClientSource,
        name: str,
        channels: ChannelConfig,
        pop_timeout: timedelta,
        lease: timedelta,
        clock: Clock | None,
    ) -> None:
        if not name:
            raise InvalidOption("queue name must not be empty")
        if lease <= timedelta(0):
            raise InvalidOption(f"lease must be positive, got {lease}")
        if pop_timeout < timedelta(0):
            raise InvalidOption(f"pop_timeout must not be negative, got {pop_timeout}")
        self.name = name
        self.url = source.display
        self.keys = RedisKeys.for_channels(channels)
        # Every script call sends these: encoded once, not by redis-py on each call.
        self._script_keys = tuple(key.encode() for key in self.keys.for_script())
        self.pop_timeout = pop_timeout
        self.lease = lease
        self._clock = clock
        self._clients = LoopClients(source)
        self._sync = SyncClient(source)
        self._sync_loop = LoopThread(f"corequeue-sync-redis-{name}")  # only without a sync client
        self._limits = Limits()
        self._limit_args = _limit_args(self._limits)
        self._held_back: Counter[HeldBack] = Counter()
        slot = self.keys.slot
        self._scripts = {
            script: Script(script, slot, SCRIPT_KEY_COUNT)
            for script in (
                _SCRIPTS + _SCRIPTS_MORE + _SCRIPTS_PERIODIC + _SCRIPTS_FLOW + _SCRIPTS_RESULTS
            )
        }
        self._finished = Bell()
        self._counted_interval: int | None = None
        self._closing = False
        self._watchers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    def __repr__(self) -> str:
        return f"RedisDriver({self.url!r}, name={self.name!r})"

    @property
    def clock(self) -> Clock | None:
        """The clock given; None when the scripts read the Redis server's clock (TIME)."""
        return self._clock

    async def push(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting`, or in `delayed` until `delay` has passed.

        Raises:
            InvalidOption: for any option: the Redis driver takes none.
        """
        await self.push_many([(job, delay)], **options)

    async def push_many(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], **options: Any
    ) -> None:
        """Push every `(job, delay)` pair in one round trip (one script per `PUSH_CHUNK`).

        Raises:
            InvalidOption: for any option: the Redis driver takes none.
        """
        calls = self._push_calls(jobs, options)
        if not calls:
            return
        clients = await self._clients.current()
        with self._errors():
            await self._scripts["push"].run_many(clients.main, calls)

    def push_sync(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting` or `delayed` from synchronous code, on any thread.

        Runs the push script with the driver's synchronous client, opened on first use (a
        driver given clients of the caller's own and no `sync_client` runs `push` on a
        private event loop thread instead).

        Raises:
            InvalidOption: for any option: the Redis driver takes none.
        """
        (call,) = self._push_calls([(job, delay)], options)
        with self._errors():
            client = self._sync.current()
            if client is None:
                self._sync_loop.run(self._push_on_private_loop(call))
                return
            self._scripts["push"].run_sync(client, call)

    async def _push_on_private_loop(self, call: list[Any]) -> None:
        """Run one push script with clients of their own (never those given to the driver)."""
        clients = await self._clients.current(given=False)
        await self._scripts["push"].run(clients.main, call)

    async def pop(self) -> PersistedJob:
        """Reserve the next due job; raise QueueEmpty after `pop_timeout`."""
        jobs = await self.pop_many(1)
        return jobs[0]

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve up to `limit` due jobs, oldest first; raise QueueEmpty after `pop_timeout`."""
        check_pop_limit(limit)
        limit = min(limit, MAX_POP)
        clients = await self._clients.current()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pop_timeout.total_seconds()
        while True:
            jobs, wait_us = await self._reserve(clients, limit)
            if jobs:
                return jobs
            if wait_us == 0:  # ids were parked, or more fell due: look again, even late
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise QueueEmpty()
            if jobs := await self._wait(clients, remaining, wait_us, limit):
                return jobs

    async def ack(self, job: PersistedJob) -> bool:
        """Remove a reserved job and its data; False, changing nothing, when stale."""
        return job.token is not None and not await self.ack_many([job])

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Ack the jobs still reserved under their tokens; return the rest.

        One script removes the jobs that keep no result; one more moves those that do to
        `completed` with their envelopes.
        """
        kept = [job for job in jobs if _keeps(job)]
        removed = [job for job in jobs if not _keeps(job)] if kept else list(jobs)
        stale: list[PersistedJob] = []
        if kept:
            stale += await self._complete(kept)
            self._finished.ring()
        if removed:
            positions = await self._run("ack", *_fenced(removed))
            stale += [removed[int(position)] for position in positions]
        return stale

    async def _complete(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Move the jobs to `completed` and their results to `results`; return the stale ones.

        Only each result travels and is written: the envelope stays as pushed.
        """
        args: list[Any] = [len(jobs), *_fenced(jobs)]
        for job in jobs:
            args += (_keep_us(job), kept_result(job))
        return [jobs[int(position)] for position in await self._run("complete", *args)]

    async def fail(self, job: PersistedJob) -> bool:
        """Move a reserved job to `failed`, storing its envelope (and `last_error`).

        Returns False, changing nothing, when the caller's token is stale.
        """
        failed = await self._settle(job, "failed", 0, job.to_bytes())
        self._finished.ring()
        return failed

    async def retry(self, job: PersistedJob) -> bool:
        """Move a reserved job to `delayed` for its backoff, storing its envelope.

        Returns False, changing nothing, when the caller's token is stale.
        """
        backoff = _microseconds(job.backoff)
        return await self._settle(job, "delayed", backoff, job.to_bytes())

    async def renew(self, job: PersistedJob) -> bool:
        """Extend the lease of a reserved job by `lease` from now; False when it is lost."""
        return job.token is not None and not await self.renew_many([job])

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Extend the leases of `jobs` in one script; return those whose lease is lost."""
        if not jobs:
            return []
        progress = [
            part
            for position, job in enumerate(jobs)
            if job.progress is not None
            for part in (position, repr(job.progress.fraction), job.progress.message)
        ]
        lease = _microseconds(self.lease)
        lost, cancelled = await self._run("renew", lease, len(progress) // 3, *progress,
                                          *_fenced(jobs))  # fmt: skip
        requested = {int(position) for position in cancelled}
        for position, job in enumerate(jobs):
            job.cancel_requested = position in requested
        return [jobs[int(position)] for position in lost]

    async def release(self, job: PersistedJob) -> bool:
        """Put a reserved job back in `waiting` without counting an attempt.

        Returns False, changing nothing, when the caller's token is stale.
        """
        return job.token is not None and bool(await self._run("release", *_fenced([job])))

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job; return whether there was one."""
        return bool(await self._run("cancel", job_id))

    def set_limits(self, limits: Limits | None) -> None:
        """Enforce `limits` at every pop of this driver (see `Driver.set_limits`)."""
        self._limits = limits or Limits()
        self._limit_args = _limit_args(self._limits)

    def held_back(self) -> dict[HeldBack, int]:
        """Return how many times each limit held a due job back in this driver's pops."""
        return dict(self._held_back)

    async def pause(self) -> None:
        """Hand out no job until `resume()`, for every worker sharing the queue's keys."""
        await self._run("pause", 1)

    async def resume(self) -> None:
        """Hand out jobs again after `pause()`; wakes the queue's blocked pops everywhere."""
        await self._run("pause", 0)

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        return bool(await self._command("EXISTS", self.keys.paused))

    async def reload(self, channel: Channel | str) -> int:
        """Move every job of `failed` or `timeout` back to `waiting`, a batch per script."""
        source = reloadable(channel)
        total, position = 0, 0
        while True:
            moved, kept = (
                int(count) for count in await self._run("reload", source.value, position)
            )
            if moved == kept == 0:
                return total
            total, position = total + moved, position + kept

    async def flush(self, channel: Channel | str) -> None:
        """Delete every job of `channel` with its data, a batch per script."""
        await self._repeat("flush", parse_channel(channel).value)

    async def info(self) -> QueueInfo:
        """Return the number of jobs in each channel (due delayed jobs count as waiting)."""
        counts = await self._run("info")
        return QueueInfo(*(int(count) for count in counts))

    async def wait_finished(self, job_id: str, wait: timedelta | None) -> JobView | None:
        """Return job `job_id` once finished, or where it is after `wait`; None if unknown.

        Every script that moves jobs to `completed` or `failed` adds an entry to the queue's
        `finished` stream; one blocking XREAD per event loop reads it and wakes the waiters,
        who look their jobs up again. A job recovered into `timeout` adds none: lookups back
        off from 5 ms to one second, the safety net.
        """
        self._watch_finished()
        pause = Pause(self._finished, _RESULT_POLL_CAP_SECONDS)
        return await wait_finished(lambda: self.get_job(job_id), pause, wait)

    def _watch_finished(self) -> None:
        """Start this event loop's reader of the `finished` stream, once."""
        loop = asyncio.get_running_loop()
        watcher = self._watchers.get(loop)
        if watcher is None or watcher.done():
            self._watchers[loop] = loop.create_task(
                self._relay_finished(), name=f"results {self.name}"
            )

    async def _relay_finished(self) -> None:
        """Ring the `finished` bell for each entry scripts add to the stream, until closed.

        One blocking XREAD per event loop, on the blocking client, whatever the number of
        waiters; after a store error it pauses and rings once (waiters look again).
        """
        last: str | None = None
        while not self._closing:
            try:
                clients = await self._clients.current()
                block = min(clients.longest_block_seconds, _RESULT_BLOCK_SECONDS)
                block_ms = max(int(block * 1000), 1)
                if last is None:
                    newest = await execute(
                        clients.main, self.keys.slot, "XREVRANGE", self.keys.finished, "+", "-",
                        "COUNT", 1,
                    )  # fmt: skip
                    last = text(newest[0][0]) if newest else "0-0"
                reply = await execute(
                    clients.blocking, self.keys.slot, "XREAD", "BLOCK", block_ms,
                    "STREAMS", self.keys.finished, last,
                )  # fmt: skip
            except Exception as exc:  # the store is down: waiters fall back on their back-off
                logger.debug("queue %s: cannot read finished jobs: %s", self.name, exc)
                last = None
                self._finished.ring()
                await asyncio.sleep(_RESULT_POLL_CAP_SECONDS)
                continue
            if reply:
                last = text(_stream_entries(reply)[-1][0])
                self._finished.ring()

    async def prune(self, failed_retention: timedelta | None, limit: int) -> int:
        """Delete up to `limit` finished jobs past their retention, in one script.

        The same script forgets rate state (`rates` entries) of scopes idle for longer than
        the slowest rate this driver enforces, and at least RATE_STATE_KEPT, looking at up to
        `limit` entries per call.
        """
        retention = "" if failed_retention is None else _microseconds(failed_retention)
        rates = [rate for rate in (self._limits.rate, self._limits.group_rate) if rate]
        horizon = max([_microseconds(RATE_STATE_KEPT), *(rate.interval_us for rate in rates)])
        return int(await self._run("prune", limit, retention, horizon))

    async def enqueue_slot(self, name: str, slot_ms: int, job: PersistedJob) -> bool:
        """Advance schedule `name` to `slot_ms` and push `job`, in one script.

        See `Driver.enqueue_slot`: the script compares the slot with the clock (the server's
        TIME when the driver has none) and with the `periodic` hash, then pushes.
        """
        args = (name, slot_ms, job.id, job.to_bytes(), job.priority, job.group or "")
        return bool(await self._run("enqueue_slot", *args))

    async def schedule_slots(self) -> dict[str, int]:
        """Return the last enqueued slot of every schedule of the queue, by name."""
        slots = await self._command("HGETALL", self.keys.periodic)
        return {text(name): int(slot) for name, slot in slots.items()}

    async def forget_schedule(self, name: str) -> bool:
        """Delete the last slot of schedule `name`; return whether there was one."""
        return bool(await self._command("HDEL", self.keys.periodic, name))

    async def beat(self, worker: WorkerInfo) -> None:
        """Record a heartbeat of `worker` in the queue's `workers` hash, at the store's now.

        Then deletes the records of workers silent for a lease (a worker count is small: the
        hash is read whole).
        """
        now_ms = await self._now_ms()
        record = json.dumps(
            {
                "hostname": worker.hostname,
                "pid": worker.pid,
                "started_ms": int(worker.started_at.timestamp() * 1000),
                "last_seen_ms": now_ms,
                "running": worker.running,
            }
        )
        await self._command("HSET", self.keys.workers, worker.id, record)
        silent = [
            w.id for w in await self._all_workers() if _ms(w.last_seen) < now_ms - to_ms(self.lease)
        ]
        if silent:
            await self._command("HDEL", self.keys.workers, *silent)

    async def forget_worker(self, worker_id: str) -> None:
        """Delete the heartbeat record of `worker_id`."""
        await self._command("HDEL", self.keys.workers, worker_id)

    async def workers(self) -> list[WorkerInfo]:
        """Return the workers that beat within one lease of now, by id."""
        horizon = await self._now_ms() - to_ms(self.lease)
        alive = [w for w in await self._all_workers() if _ms(w.last_seen) >= horizon]
        return sorted(alive, key=lambda worker: worker.id)

    async def count_finished(self, processed: int, retried: int, failed: int) -> None:
        """Add finished attempts to the current interval's counters in the `throughput` hash.

        Fields `<interval start ms>:<p|r|f>`, one HINCRBY each. Once per new interval seen by
        this driver, fields older than THROUGHPUT_HISTORY are deleted (at most a day of
        intervals: a few thousand fields).
        """
        start = interval_of(await self._now_ms())
        for kind, count in (("p", processed), ("r", retried), ("f", failed)):
            if count:
                await self._command("HINCRBY", self.keys.throughput, f"{start}:{kind}", count)
        if start != self._counted_interval:
            self._counted_interval = start
            oldest = start - to_ms(THROUGHPUT_HISTORY)
            fields = [text(field) for field in await self._command("HKEYS", self.keys.throughput)]
            old = [field for field in fields if _interval_field(field) < oldest]
            if old:
                await self._command("HDEL", self.keys.throughput, *old)

    async def throughput(self, since: datetime) -> list[Throughput]:
        """Return the counters of the intervals starting at or after `since`, oldest first."""
        since_ms = int(since.timestamp() * 1000)
        counts: dict[int, dict[str, int]] = {}
        for field, value in (await self._command("HGETALL", self.keys.throughput)).items():
            start, _, kind = text(field).partition(":")
            if start.isdigit() and int(start) >= since_ms:
                counts.setdefault(int(start), {})[kind] = int(value)
        return [
            Throughput(instant_of_ms(start), by.get("p", 0), by.get("r", 0), by.get("f", 0))
            for start, by in sorted(counts.items())
        ]

    async def _all_workers(self) -> list[WorkerInfo]:
        records = await self._command("HGETALL", self.keys.workers)
        workers = []
        for worker_id, record in records.items():
            try:
                fields = json.loads(record)
                workers.append(
                    WorkerInfo(
                        text(worker_id),
                        str(fields["hostname"]),
                        int(fields["pid"]),
                        instant_of_ms(int(fields["started_ms"])),
                        instant_of_ms(int(fields["last_seen_ms"])),
                        int(fields["running"]),
                    )
                )
            except (ValueError, KeyError, TypeError):  # not a record this release wrote
                continue
        return workers

    async def _now_ms(self) -> int:
        """The store's now in milliseconds: the clock given, else the Redis server's TIME."""
        if self._clock is not None:
            return self._clock.now_ms()
        seconds, micros = await self._command("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    async def close(self) -> None:
        """Close the connections the driver opened (not a client given to it), sync ones too."""
        # A reader cancelled inside its XREAD can leave close() waiting on the connection: it is
        # told to stop instead and ends at its next return (at most one block later).
        watchers, self._watchers = self._watchers, {}
        self._closing = True
        current = asyncio.get_running_loop()
        for loop, watcher in watchers.items():
            if loop is current:
                await asyncio.wait([watcher], timeout=_RESULT_BLOCK_SECONDS + 1)
                watcher.cancel()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(watcher.cancel)
        await self._clients.close()
        await asyncio.to_thread(self._sync.close)
        await asyncio.to_thread(self._sync_loop.stop)  # joins a thread: not on the event loop

    async def list_jobs(
        self,
        channel: Channel | str,
        *,
        offset: int = 0,
        limit: int = 50,
        job_type: str | None = None,
    ) -> list[JobView]:
        """Return up to `limit` jobs of `channel` after `offset` (see InspectDriver).

        With `job_type`, the channel is read in windows of `LIST_WINDOW` jobs, one script each,
        until the page is full: no call blocks Redis for long, however long the channel.
        """
        parsed = check_listing(channel, offset, limit)
        if job_type is None:
            views, _ = await self._list_window(parsed, offset, limit)
            return views
        matches: list[JobView] = []
        position = 0
        while position >= 0 and len(matches) < offset + limit:
            window, position = await self._list_window(parsed, position, LIST_WINDOW)
            matches += [view for view in window if view.job.type == job_type]
        return matches[offset : offset + limit]

    async def get_job(self, job_id: str) -> JobView | None:
        """Return the job with id `job_id` wherever it is, or None."""
        reply = await self._run("lookup", job_id)
        if reply is None:
            return None
        channel, score, envelope, lost, progress, kept = reply
        return view(job_id, Channel(text(channel)), envelope, lost, score, progress, kept)

    async def delete_job(self, job_id: str) -> bool:
        """Delete a waiting, delayed, failed or timeout job; return whether there was one."""
        return bool(await self._run("delete", job_id))

    async def retry_job(self, job_id: str) -> bool:
        """Move one failed or timeout job back to `waiting`; return whether it was there."""
        return bool(await self._run("requeue", job_id))

    async def group_counts(self) -> dict[str, GroupCounts]:
        """Return the waiting and reserved jobs of every group that has some (groups.lua)."""
        reply = await self._run("groups")
        found = {
            text(reply[i]): GroupCounts(int(reply[i + 1]), int(reply[i + 2]))
            for i in range(0, len(reply), 3)
        }
        return dict(sorted(found.items()))

    async def migrate(self) -> list[int]:
        """Convert the queue from store layout 1 (an earlier release) to layout 2, in place.

        Jobs of every channel are converted, a batch of `MIGRATE_BATCH` per script, with their
        leases, reservation tokens and lost-lease counts. Workers of this release wait (their
        calls fail with a DriverError, before and during the conversion) and carry on once it
        is done; workers of the earlier release must be stopped first: they read the old keys.
        Safe to run again, and from several processes at once.

        Returns:
            `[2]` when this call converted (part of) the queue, `[]` when it was in layout 2
            already or new.
        """
        clients = await self._clients.current()
        with self._errors():
            state = await self._migrate_step(clients, "", [])
            converted = state != str(LAYOUT_VERSION)
            while state != str(LAYOUT_VERSION):
                source = self.keys.for_script()[_converting(state) - 1]
                last = MIGRATE_BATCH - 1
                ids = await execute(clients.main, self.keys.slot, "ZRANGE", source, 0, last)
                state = await self._migrate_step(clients, state, ids)
        if converted:
            logger.info("queue %s: converted to store layout %d", self.name, LAYOUT_VERSION)
        return [LAYOUT_VERSION] if converted else []

    async def _migrate_step(self, clients: Clients, state: str, ids: list[Any]) -> str:
        """Run migrate.lua once: convert `ids` (of the channel `state` names); return the state."""
        layout1_keys = [self.keys.layout1_job(text(job_id)) for job_id in ids]
        keys = [*self.keys.for_script(), self.keys.scratch, *layout1_keys]
        args = [*keys, self._now(), state, *ids]
        reply = await self._scripts["migrate"].run(clients.main, args, key_count=len(keys))
        return text(reply)

    async def _list_window(
        self, channel: Channel, start: int, count: int
    ) -> tuple[list[JobView], int]:
        """Return the jobs at positions `start`.. of `channel` and the next position (-1: end)."""
        reply = await self._run("inspect", channel.value, start, count)
        views = [
            view(text(job_id), channel, envelope, lost, score, progress, kept)
            for job_id, envelope, lost, score, progress, kept in sixes(reply[1:])
        ]
        return views, int(reply[0])

    # --- pop ---------------------------------------------------------------------------------

    async def _reserve(
        self, clients: Clients, limit: int, wake_key: str | None = None
    ) -> tuple[list[PersistedJob], int]:
        token = new_token()  # one per pop: fencing compares (id, token) pairs
        timed = "1" if wake_key else ""
        args: list[Any] = [*self.keys.for_script(wake_key), self._now()]
        args += [limit, _microseconds(self.lease), timed, token, *self._limit_args]
        with self._errors():
            reply = await self._scripts["pop"].run(clients.main, args)
        wait_us = reply[0]
        if isinstance(wait_us, list):  # under limits: {wait, holds by reason}
            wait_us, *holds = wait_us
            for reason, count in zip(_HOLD_REASONS, holds, strict=True):
                self._held_back[reason] += int(count)
        jobs: list[PersistedJob] = []
        for index in range(1, len(reply), 3):
            job_id, envelope, extra = reply[index : index + 3]
            if envelope is None:  # no envelope: the script parked the id in `failed`
                logger.error("queue %s: job %s moved to failed: %s",
                             self.name, text(job_id), text(extra))  # fmt: skip
                continue
            try:
                job = decode_job(envelope, extra)
            except DecodeError as exc:
                await self._park_undecodable(text(job_id), token, exc)
                continue
            job.token = token
            jobs.append(job)
        return jobs, int(wait_us)

    async def _park_undecodable(self, job_id: str, token: str, exc: DecodeError) -> None:
        # Not a job this release can read (corrupt, or a newer wire format): keep the bytes in
        # `failed`, where an operator (or a newer worker, after reload) can deal with it.
        try:
            await self._run("settle", job_id, "failed", 0, "", token)
        except DriverError as failure:
            # The readable jobs of this pop are reserved already: hand them out all the same.
            # This one stays reserved; when its lease runs out it is parked in `timeout`.
            logger.error("queue %s: job %s cannot be read (%s) nor parked: %s",
                         self.name, job_id, exc, failure)  # fmt: skip
            return
        logger.error("queue %s: job %s moved to failed: %s", self.name, job_id, exc)

    async def _wait(
        self, clients: Clients, remaining: float, wait_us: int, limit: int
    ) -> list[PersistedJob]:
        """Block until a token arrives or `remaining` seconds pass; reserve when work falls due.

        Returns the jobs the timer reserved, if any; an empty list means "look again".
        """
        woken = asyncio.Event()
        keys = [self.keys.notify]
        timer = None
        if 0 < wait_us < remaining * 1_000_000:
            keys.insert(0, f"{self.keys.wake_prefix}{os.urandom(8).hex()}")
            timer = asyncio.create_task(
                self._reserve_when_due(clients, wait_us, limit, keys[0], woken),
                name=f"corequeue timer {self.name}",
            )
        try:
            timeout = math.ceil(min(remaining, clients.longest_block_seconds) * 1000) / 1000
            with store_errors(self.url):
                await execute(clients.blocking, self.keys.slot, "BLPOP", *keys, timeout)
        except BaseException:
            woken.set()
            await self._release_quietly(await _outcome(timer))
            raise
        woken.set()
        return await _outcome(timer)

    async def _reserve_when_due(
        self, clients: Clients, wait_us: int, limit: int, wake_key: str, woken: asyncio.Event
    ) -> list[PersistedJob]:
        # A local timer, not BLPOP's timeout, decides when a delayed job (or a lease) is due:
        # Redis checks blocking timeouts only every 1/hz s. The pop script it runs then pushes
        # to `wake_key`, ending this pop's BLPOP at once.
        while wait_us >= 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), wait_us / 1_000_000)
            if woken.is_set():
                return []
            jobs, wait_us = await self._reserve(clients, limit, wake_key)
            if jobs:
                return jobs
        return []

    async def _release_quietly(self, jobs: list[PersistedJob]) -> None:
        # A pop that fails or is cancelled hands back what its timer reserved; should that fail
        # too, the leases run out and the jobs come back, an attempt counted.
        if jobs:
            with contextlib.suppress(Exception):
                await self._run("release", *_fenced(jobs))

    # --- plumbing ----------------------------------------------------------------------------

    async def _settle(
        self, job: PersistedJob, destination: str, delay_us: int, envelope: bytes
    ) -> bool:
        if job.token is None:
            return False
        return bool(await self._run("settle", job.id, destination, delay_us, envelope, job.token))

    async def _run(self, script: str, *args: Any) -> Any:
        clients = await self._clients.current()
        with self._errors():
            return await self._scripts[script].run(clients.main, self._args_of([list(args)])[0])

    async def _command(self, *args: Any) -> Any:
        """Run one command on the queue's keys (on Cluster, at the node holding its slot)."""
        clients = await self._clients.current()
        with self._errors():
            return await execute(clients.main, self.keys.slot, *args)

    async def _repeat(self, script: str, *args: Any) -> int:
        total = 0
        while moved := int(await self._run(script, *args)):
            total += moved
        return total

    def _push_calls(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], options: dict[str, Any]
    ) -> list[list[Any]]:
        """Return the KEYS and ARGV of the push scripts for `jobs`, one per `PUSH_CHUNK`."""
        if options:
            raise InvalidOption(f"the Redis driver takes no push options, got {sorted(options)}")
        calls: list[list[Any]] = []
        for start in range(0, len(jobs), PUSH_CHUNK):
            args: list[Any] = []
            add = args.append  # five appends per job: no list of its own for the GC to count
            for job, delay in jobs[start : start + PUSH_CHUNK]:
                add(job.id)
                add(_microseconds(delay))
                add(job.to_bytes())
                add(job.priority)
                add(job.group or "")
            calls.append(args)
        return self._args_of(calls)

    def _args_of(self, calls: list[list[Any]]) -> list[list[Any]]:
        keys, now = self._script_keys, self._now()
        return [[*keys, now, *args] for args in calls]

    def _now(self) -> str:
        """Return ARGV 1 of every script: now in microseconds, or "" for the server's clock."""
        return "" if self._clock is None else str(self._clock.now_us())

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Map redis-py errors (see `store_errors`); explain a queue in another store layout."""
        with store_errors(self.url):
            try:
                yield
            except ResponseError as exc:
                if not str(exc).startswith(_REFUSED):
                    raise
                raise DriverError(_layout_message(self, str(exc))) from exc


def _layout_message(driver: RedisDriver, refusal: str) -> str:
    state = refusal.removeprefix(_REFUSED).strip()
    where = f"redis queue {driver.name!r} at {driver.url}"
    if state.startswith("1>"):
        return f"{where} is being converted to store layout {LAYOUT_VERSION}; try again shortly"
    return (
        f"{where} is in store layout {state}, written by an earlier corequeue release; this "
        f"release reads layout {LAYOUT_VERSION}. Stop the workers of that release, then run "
        "`corequeue migrate` (or await RedisDriver.migrate())"
    )


def _converting(state: str) -> int:
    """Return the number (1-5, lib.lua's order) of the channel migrate.lua is converting."""
    prefix, _, number = state.partition(":")
    if prefix != "1>2" or not number.isdigit() or not 1 <= int(number) <= _LAYOUT1_CHANNELS:
        raise DriverError(f"unknown store layout state {state!r}")
    return int(number)


_HOLD_REASONS: Final = (
    HeldBack.CONCURRENCY,
    HeldBack.GROUP_CONCURRENCY,
    HeldBack.RATE,
    HeldBack.GROUP_RATE,
)
"""The order of pop.lua's hold counts."""


def _limit_args(limits: Limits) -> list[Any]:
    """Return ARGV 6..11 of pop.lua for `limits` ("" for a limit not set)."""
    return [
        "" if limits.concurrency is None else limits.concurrency,
        "" if limits.group_concurrency is None else limits.group_concurrency,
        "" if limits.rate is None else limits.rate.interval_us,
        "" if limits.group_rate is None else limits.group_rate.interval_us,
        "" if limits.rate is None else limits.rate.ahead_us,
        "" if limits.group_rate is None else limits.group_rate.ahead_us,
    ]


def _microseconds(duration: timedelta) -> int:
    """Return `duration` in whole microseconds, clamped where Lua numbers stay exact."""
    return min(duration // _MICROSECOND, _MAX_DELAY_US)


async def _outcome(timer: asyncio.Task[list[PersistedJob]] | None) -> list[PersistedJob]:
    """Wait for `timer` to finish (a pop script in flight must not be cut off: that drops its
    connection) and return the jobs it reserved; its errors mean it reserved none."""
    if timer is None:
        return []
    (result,) = await asyncio.gather(timer, return_exceptions=True)
    return result if isinstance(result, list) else []


def _keeps(job: PersistedJob) -> bool:
    """Whether an ack of `job` keeps it in `completed` (a positive `keep_result`)."""
    return job.keep_result is not None and job.keep_result > timedelta(0)


def _interval_field(field: str) -> int:
    """The interval start of a `throughput` field; -1 for a field this release does not write."""
    start = field.partition(":")[0]
    return int(start) if start.isdigit() else -1


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _stream_entries(reply: Any) -> list[Any]:
    """Return the entries of an XREAD reply of one stream (RESP2 list or RESP3 map)."""
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0])
    return list(reply[0][1])


def _keep_us(job: PersistedJob) -> int:
    return _microseconds(job.keep_result or timedelta(0))


_RESULT_BLOCK_SECONDS: Final = 0.25
"""The longest XREAD BLOCK of the `finished` stream reader (also what close() may wait)."""

_RESULT_POLL_CAP_SECONDS: Final = 1.0
"""The longest pause between two lookups of `wait_finished` when the stream says nothing."""


def _fenced(jobs: Sequence[PersistedJob]) -> list[str]:
    """Return the `(id, token)` pairs the fenced scripts take, flat; "" for no token."""
    return [part for job in jobs for part in (job.id, job.token or "")]


__all__ = ["MAX_POP", "MIGRATE_BATCH", "PUSH_CHUNK", "RedisDriver", "RedisKeys"]
