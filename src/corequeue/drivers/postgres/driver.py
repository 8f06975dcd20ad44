"""PostgresDriver: corequeue on PostgreSQL, with transactional enqueue.

Every queue of a schema shares one `jobs` table. A row's `state` says where the job is; `due_ms`
is when a pending job may run (so `waiting` and `delayed` are one state split by the clock) or
when a reserved job's lease runs out; due times are rounded up from the microsecond, so
nothing runs before its exact due instant. Each move is one statement, so one transaction; pop
reserves with `FOR UPDATE SKIP LOCKED`, so any number of workers take each job exactly once.
A push sends a NOTIFY on commit, which wakes idle pops in every process within milliseconds.
`push_sync` (`Queue.dispatch_sync`) runs the same statement on a synchronous pool of its own.

Settlement is fenced: each pop stores a fresh token in the rows it reserves, and every ack,
fail, retry, release and renew matches it in the statement that moves the row, so a worker
whose lease ran out cannot touch the job after it was recovered or popped again.

Periodic schedules keep their last enqueued slot in the schema's `periodic` table; one
statement advances it (a conditional upsert) and pushes the slot's job when it advanced.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from corequeue.drivers.base import (
    DEFAULT_LEASE,
    DEFAULT_POP_TIMEOUT,
    LEASE_EXPIRED,
    THROUGHPUT_HISTORY,
    THROUGHPUT_INTERVAL,
    Channel,
    Clock,
    GroupCounts,
    JobView,
    QueueInfo,
    Throughput,
    WorkerInfo,
    check_listing,
    check_pop_limit,
    instant_of_ms,
    parse_channel,
    reloadable,
)
from corequeue.drivers.finished import Pause, wait_finished
from corequeue.drivers.postgres import migrations
from corequeue.drivers.postgres.dsn import connect_options, parse_dsn, redact, store_errors
from corequeue.drivers.postgres.flow import flow_queries, reserve_limited
from corequeue.drivers.postgres.inspection import inspection_queries
from corequeue.drivers.postgres.listener import Listener
from corequeue.drivers.postgres.pooling import SyncPool, pool_waits
from corequeue.drivers.postgres.queries import Queries
from corequeue.drivers.sql_state import (
    FAILED,
    JOB_COLUMN_COUNT,
    PARKED_STATE,
    PENDING,
    PRIORITY_COLUMN,
    counts_by_group,
    headers_column,
    job_from_columns,
    readable_or_not,
    worker_of,
)
from corequeue.drivers.wakeup import Bell
from corequeue.errors import (
    DecodeError,
    DriverError,
    InvalidOption,
    QueueEmpty,
    StoreUnavailable,
)
from corequeue.job import PersistedJob, new_token, to_ms
from corequeue.limits import HeldBack, Limits

_PARKED_STATE = PARKED_STATE
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")

Connection: TypeAlias = "psycopg.AsyncConnection[Any] | psycopg.Connection[Any]"
"""A caller's open connection, for transactional enqueue."""

Params: TypeAlias = dict[str, Any]


_RECONNECT_PAUSE_SECONDS = 0.1
"""How long a pop waits before trying again on a connection the server dropped."""

_DUE_RETRY_SECONDS = 0.001
"""How soon a pop looks again at a due job another worker has locked."""

_MICROSECOND = timedelta(microseconds=1)
"""Delays travel in whole microseconds: the statements round due times up from them."""


class PostgresDriver:
    """Stores named queues in PostgreSQL 13+; a push can join the caller's transaction.

    Nothing connects until first use: then the pool opens and the schema is created or
    migrated (see `migrate()`).

    Args:
        dsn: A libpq connection string or URL, e.g. `postgresql://app@db.internal/app`.
        name: The queue's name; any number of queues share the schema's table.
        schema: The PostgreSQL schema holding corequeue's tables (an unquoted identifier).
        pop_timeout: How long `pop()` waits for a job before raising QueueEmpty.
        lease: How long a popped job stays reserved without a renewal.
        poll_interval: How often an idle `pop()` looks again even without a notification (a
            safety net for notifications missed while the listening connection reconnects).
        clock: Source of time; tests pass a FakeClock. When None, every statement reads the
            database server's clock, so clock skew between machines does not matter.
        pool_min_size: Connections the pool keeps open.
        pool_max_size: Connections a pool opens at most: the pool of each event loop that
            uses the driver, and the synchronous pool of `push_sync` (plus one connection per
            event loop that pops, for LISTEN). Callers beyond it wait for a free connection.
        pool_timeout: How long an operation waits for a connection before raising
            StoreUnavailable, whose message names both settings (it is also the connect
            timeout).

    Example:
        >>> driver = PostgresDriver("postgresql://app@localhost/app", name="emails")
        >>> queue = Queue(driver)  # doctest: +SKIP
    """

    def __init__(
        self,
        dsn: str,
        name: str = "default",
        schema: str = "corequeue",
        *,
        pop_timeout: timedelta = DEFAULT_POP_TIMEOUT,
        lease: timedelta = DEFAULT_LEASE,
        poll_interval: timedelta = timedelta(seconds=1),
        clock: Clock | None = None,
        pool_min_size: int = 1,
        pool_max_size: int = 10,
        pool_timeout: timedelta = timedelta(seconds=5),
    ) -> None:
        _check_options(name, schema, pool_min_size, pool_max_size, pool_timeout)
        self.name = name
        self.schema = schema
        self.pop_timeout = pop_timeout
        self.lease = lease
        self.poll_interval = poll_interval
        self._dsn = dsn
        self._store = redact(dsn)
        self._dsn_options = parse_dsn(dsn)
        self._clock = clock
        self._pool_sizes = (pool_min_size, pool_max_size)
        self._pool_timeout = pool_timeout
        self._queries = Queries.for_schema(schema)
        self._channel = f"{schema}.jobs"
        self._bell = Bell()
        self._limits = Limits()
        self._held_back: Counter[HeldBack] = Counter()
        self._finished = Bell()
        self._finished_payload = f"{name}:finished"
        self._migrated = False
        # One pool per event loop (an application may use the driver from several), as psycopg
        # connections belong to the loop that opened them; one sync pool for `push_sync`.
        self._loops: dict[asyncio.AbstractEventLoop, _LoopResources] = {}
        self._sync_pool = SyncPool(self._new_sync_pool, self._store, pool_timeout)
        self._sync_migrate_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresDriver({self._store!r}, name={self.name!r}, schema={self.schema!r})"

    @property
    def clock(self) -> Clock | None:
        """The clock given; None when every statement reads the database server's clock."""
        return self._clock

    def stores_in(self, connection: psycopg.Connection[Any]) -> bool:
        """Return whether `connection` reaches the database this driver keeps its jobs in.

        Compares the database name, port and host the DSN names (those it leaves out match
        anything) with those of the open connection: a push given that connection lands in
        this driver's tables, inside the connection's transaction. Host names are compared
        as written: `localhost` and `127.0.0.1` differ.
        """
        info = connection.info
        found = {"dbname": info.dbname, "port": str(info.port), "host": info.host}
        return all(
            str(self._dsn_options[key]) == value for key, value in found.items()
            if self._dsn_options.get(key)
        )  # fmt: skip

    async def migrate(self) -> list[int]:
        """Create the schema or bring it to this release's version; return the versions applied.

        Safe to run from many processes at once, and again: an up-to-date schema is left as it
        is. Every operation runs it on first use; `corequeue migrate` runs it ahead of deploys.

        Raises:
            StoreUnavailable: If PostgreSQL cannot be reached.
            DriverError: If the schema is newer than this release understands.
        """
        with self._translate_errors():
            async with await self._connect() as connection:
                applied = await migrations.migrate(connection, self.schema)
        self._migrated = True
        return applied

    async def push(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting`, or in `delayed` until `delay` has passed.

        Args:
            job: The job; nothing happens if its id is already waiting, delayed or reserved.
            delay: How long the job waits before it may run.
            **options: Only `connection`: an open psycopg connection (async, or sync for
                `dispatch_sync`) whose transaction the job joins: it exists only if that
                transaction commits, and workers wake on commit. The caller commits or rolls
                back.

        Raises:
            InvalidOption: For any other option, or a connection that is not psycopg's.
        """
        await self.push_many([(job, delay)], **options)

    async def push_many(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], **options: Any
    ) -> None:
        """Push every `(job, delay)` pair in one statement; see `push()` for the options."""
        connection = _connection_option(options)
        if not jobs:
            return
        params = self._push_params(jobs)
        if connection is not None:
            await self._resources()  # the schema must exist before the caller's insert
            with self._translate_errors():
                await _execute_on(connection, self._queries.push, params)
            return
        await self._execute(self._queries.push, params)
        self._bell.ring()

    def push_sync(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting` or `delayed` from synchronous code, on any thread.

        Runs the statement of `push()` on the driver's synchronous pool (opened on first use),
        with no event loop.

        Args:
            job: See `push()`.
            delay: See `push()`.
            **options: Only `connection`: an open synchronous psycopg Connection whose
                transaction the job joins, as for `push()`.

        Raises:
            InvalidOption: For any other option, or a connection that is not a psycopg
                Connection.
        """
        connection = _connection_option(options)
        if isinstance(connection, psycopg.AsyncConnection):
            raise InvalidOption("push_sync takes a psycopg Connection, not an AsyncConnection")
        params = self._push_params([(job, delay)])
        self._migrate_sync()  # the schema must exist before the insert
        with self._translate_errors():
            if connection is not None:
                connection.execute(self._queries.push, params)
                return
            self._sync_pool.run(lambda pooled: pooled.execute(self._queries.push, params))
        self._bell.ring()

    async def pop(self) -> PersistedJob:
        """Reserve the next due job under a fresh token; raise QueueEmpty after `pop_timeout`."""
        jobs = await self.pop_many(1)
        return jobs[0]

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve up to `limit` due jobs (at least one); raise QueueEmpty after `pop_timeout`."""
        check_pop_limit(limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pop_timeout.total_seconds()
        await self._listening()
        looked_again = False
        while True:
            seen = self._bell.rings
            try:
                jobs, wait_seconds = await self._reserve(limit)
            except StoreUnavailable:
                # A pooled connection the server dropped (restart, failover): the pool replaces
                # it, so try again while the pop timeout lasts; raise only past it.
                if loop.time() + _RECONNECT_PAUSE_SECONDS >= deadline:
                    raise
                await asyncio.sleep(_RECONNECT_PAUSE_SECONDS)
                continue
            if jobs:
                return jobs
            if wait_seconds <= 0 and not looked_again:
                # Due now, yet not reserved: the statement's one snapshot could not reserve the
                # jobs it had just recovered from expired leases. The next look takes them.
                looked_again = True
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise QueueEmpty()
            await self._bell.wait(seen, min(remaining, max(wait_seconds, _DUE_RETRY_SECONDS)))

    async def ack(self, job: PersistedJob) -> bool:
        """Remove a reserved job (or keep it in `completed`); False when its token is stale."""
        if job.token is None:
            return False
        if _keeps(job):
            acked = not await self._complete_many([job])
        else:
            params = self._params(id=job.id, token=job.token)
            acked = await self._execute(self._queries.ack, params) > 0
        self._freed()
        return acked

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Ack several reserved jobs, one statement for those that keep their result and one
        for the rest; return the stale ones, left alone."""
        kept = [job for job in jobs if _keeps(job)]
        removed = [job for job in jobs if not _keeps(job)] if kept else list(jobs)
        stale = await self._complete_many(kept) if kept else []
        if removed:
            rows = await self._fetch(self._queries.ack_many, self._held_params(removed))
            stale.extend(removed[position - 1] for (position,) in rows)
        self._freed()
        return stale

    async def _complete_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Move reserved jobs to `completed` with their results; return the stale ones."""
        params = self._held_params(
            jobs,
            keeps=[to_ms(job.keep_result or timedelta(0)) for job in jobs],
            results=[job.result for job in jobs],
        )
        rows = await self._fetch(self._queries.complete_many, params)
        return [jobs[position - 1] for position in rows[0][0]]

    async def fail(self, job: PersistedJob) -> bool:
        """Move a reserved job to `failed`, keeping its envelope.

        Returns False, changing nothing, when `job.token` is stale.
        """
        return await self._settle(job, FAILED, timedelta(0))

    async def retry(self, job: PersistedJob) -> bool:
        """Move a reserved job to `delayed` for its backoff, storing its updated envelope.

        Returns False, changing nothing, when `job.token` is stale.
        """
        moved = await self._settle(job, PENDING, job.backoff)
        if moved:
            self._bell.ring()
        return moved

    async def renew(self, job: PersistedJob) -> bool:
        """Extend the lease of a reserved job by `lease` from now; False when it is lost."""
        if job.token is None:
            return False
        params = self._params(id=job.id, token=job.token, lease_ms=to_ms(self.lease))
        return await self._execute(self._queries.renew, params) > 0

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Extend several leases by `lease` from now, in one statement; return the lost ones."""
        if not jobs:
            return []
        params = self._held_params(
            jobs,
            lease_ms=to_ms(self.lease),
            progresses=[None if job.progress is None else job.progress.fraction for job in jobs],
            messages=[None if job.progress is None else job.progress.message for job in jobs],
        )
        rows = await self._fetch(self._queries.renew_many, params)
        cancelled = {(row[0], row[1]) for row in rows if row[2]}
        for job in jobs:
            job.cancel_requested = (job.id, job.token) in cancelled
        return _not_matched(jobs, rows)

    async def release(self, job: PersistedJob) -> bool:
        """Put a reserved job back in `waiting` without counting an attempt.

        Returns False, changing nothing, when `job.token` is stale.
        """
        if job.token is None:
            return False
        params = self._params(id=job.id, token=job.token)
        moved = await self._moved(self._queries.release, params)
        if moved:
            self._bell.ring()
        return moved

    def set_limits(self, limits: Limits | None) -> None:
        """Enforce `limits` at every pop of this driver (see `Driver.set_limits`)."""
        self._limits = limits or Limits()

    def held_back(self) -> dict[HeldBack, int]:
        """Return how many times each limit held a due job back in this driver's pops."""
        return dict(self._held_back)

    async def pause(self) -> None:
        """Hand out no job until `resume()`, for every worker sharing the database."""
        await self._fetch(self._queries.set_paused, self._params(paused=True))

    async def resume(self) -> None:
        """Hand out jobs again after `pause()`; wakes the queue's pops on every worker."""
        await self._fetch(self._queries.set_paused, self._params(paused=False))
        self._bell.ring()

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        rows = await self._fetch(self._queries.is_paused, self._params())
        return bool(rows[0][0])

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job, or record a cancel request for a reserved one."""
        return await self._moved(self._queries.cancel, self._params(id=job_id))

    async def reload(self, channel: Channel | str) -> int:
        """Move every job of `failed` or `timeout` back to `waiting`; return how many moved."""
        params = self._params(state=_PARKED_STATE[reloadable(channel)])
        rows = await self._fetch(self._queries.reload, params)
        self._bell.ring()
        return int(rows[0][0])

    async def flush(self, channel: Channel | str) -> None:
        """Delete every job of `channel`."""
        parsed = parse_channel(channel)
        if parsed in _PARKED_STATE:
            params = self._params(state=_PARKED_STATE[parsed])
            await self._execute(self._queries.flush_state, params)
        elif parsed is Channel.WAITING:
            await self._execute(self._queries.flush_waiting, self._params())
        else:
            await self._execute(self._queries.flush_delayed, self._params())

    async def info(self) -> QueueInfo:
        """Return the number of jobs in each channel."""
        rows = await self._fetch(self._queries.info, self._params())
        counts = dict.fromkeys(Channel, 0)
        for state, in_future, count in rows:
            if state == PENDING:
                counts[Channel.DELAYED if in_future else Channel.WAITING] += count
            else:
                channel = next(c for c, s in _PARKED_STATE.items() if s == state)
                counts[channel] += count
        return QueueInfo(**{channel.value: count for channel, count in counts.items()})

    async def wait_finished(self, job_id: str, wait: timedelta | None) -> JobView | None:
        """Return job `job_id` once finished, or where it is after `wait`; None if unknown.

        Acks that keep a result and moves to `failed` send a NOTIFY on commit, which a LISTEN
        connection of this event loop turns into a new look at once; a job recovered into
        `timeout` from an expired lease sends none and is seen within `poll_interval`.
        """
        await self._listening(finished=True)
        pause = Pause(self._finished, self.poll_interval.total_seconds())
        return await wait_finished(lambda: self.get_job(job_id), pause, wait)

    async def prune(self, failed_retention: timedelta | None, limit: int) -> int:
        """Delete up to `limit` finished jobs past their retention (see `Driver.prune`)."""
        retention_ms = None if failed_retention is None else to_ms(failed_retention)
        params = self._params(retention_ms=retention_ms, limit=limit)
        return await self._execute(self._queries.prune, params)

    async def enqueue_slot(self, name: str, slot_ms: int, job: PersistedJob) -> bool:
        """Advance schedule `name` to `slot_ms` and push `job`, in one statement.

        See `Driver.enqueue_slot`: the slot is compared with the clock (the server's when the
        driver has none) and with the stored last slot in the same statement as the push.
        """
        params = self._params(
            name=name,
            slot_ms=slot_ms,
            id=job.id,
            type=job.type,
            value=job.value,
            handle_timeout_ms=to_ms(job.handle_timeout),
            backoff_ms=to_ms(job.backoff),
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            last_error=job.last_error,
            headers=headers_column(job.headers),
            priority=job.priority,
            job_group=job.group,
            keep_result_ms=None if job.keep_result is None else to_ms(job.keep_result),
        )
        enqueued = await self._moved(self._queries.enqueue_slot, params)
        if enqueued:
            self._bell.ring()
        return enqueued

    async def schedule_slots(self) -> dict[str, int]:
        """Return the last enqueued slot of every schedule of the queue, by name."""
        rows = await self._fetch(self._queries.schedule_slots, self._params())
        return {str(name): int(last) for name, last in rows}

    async def forget_schedule(self, name: str) -> bool:
        """Delete the last slot of schedule `name`; return whether there was one."""
        return await self._execute(self._queries.forget_schedule, self._params(name=name)) > 0

    async def beat(self, worker: WorkerInfo) -> None:
        """Record a heartbeat of `worker` now; forget up to 100 workers silent for a lease."""
        params = self._params(
            id=worker.id,
            hostname=worker.hostname,
            pid=worker.pid,
            started_ms=int(worker.started_at.timestamp() * 1000),
            running=worker.running,
            lease_ms=to_ms(self.lease),
        )
        await self._execute(self._queries.beat, params)

    async def forget_worker(self, worker_id: str) -> None:
        """Delete the heartbeat record of `worker_id`."""
        await self._execute(self._queries.forget_worker, self._params(id=worker_id))

    async def workers(self) -> list[WorkerInfo]:
        """Return the workers that beat within one lease of now, by id."""
        params = self._params(lease_ms=to_ms(self.lease))
        return [worker_of(row) for row in await self._fetch(self._queries.workers, params)]

    async def count_finished(self, processed: int, retried: int, failed: int) -> None:
        """Add finished attempts to the current interval's counters; forget day-old ones."""
        params = self._params(
            processed=processed,
            retried=retried,
            failed=failed,
            interval_ms=to_ms(THROUGHPUT_INTERVAL),
            history_ms=to_ms(THROUGHPUT_HISTORY),
        )
        await self._execute(self._queries.count_finished, params)

    async def throughput(self, since: datetime) -> list[Throughput]:
        """Return the counters of the intervals starting at or after `since`, oldest first."""
        params = self._params(since_ms=int(since.timestamp() * 1000))
        rows = await self._fetch(self._queries.throughput, params)
        return [Throughput(instant_of_ms(start), p, r, f) for start, p, r, f in rows]

    async def close(self) -> None:
        """Close the pools and listening connections of every event loop that used the driver."""
        current = asyncio.get_running_loop()
        loops, self._loops = self._loops, {}
        for loop, resources in loops.items():
            if loop is current:
                await resources.close()
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(resources.close(), loop)
                await asyncio.wrap_future(future)
            elif not loop.is_closed():  # stopped: run it once more, in a thread, to close
                await asyncio.to_thread(loop.run_until_complete, resources.close())
            # A closed loop can run nothing more: its connections end with the process.
        await self._sync_pool.close()

    async def list_jobs(
        self,
        channel: Channel | str,
        *,
        offset: int = 0,
        limit: int = 50,
        job_type: str | None = None,
    ) -> list[JobView]:
        """Return up to `limit` jobs of `channel` after `offset` (see InspectDriver)."""
        parsed = check_listing(channel, offset, limit)
        queries = inspection_queries(self.schema)
        params = self._params(offset=offset, limit=limit, job_type=job_type)
        if parsed is Channel.WAITING:
            query = queries.list_waiting
        elif parsed is Channel.DELAYED:
            query = queries.list_delayed
        else:
            query, params["state"] = queries.list_state, _PARKED_STATE[parsed]
        return [_view(row) for row in await self._fetch(query, params)]

    async def get_job(self, job_id: str) -> JobView | None:
        """Return the job with id `job_id` wherever it is, or None."""
        rows = await self._fetch(inspection_queries(self.schema).get, self._params(id=job_id))
        return _view(rows[0]) if rows else None

    async def delete_job(self, job_id: str) -> bool:
        """Delete a waiting, delayed, failed or timeout job; return whether there was one."""
        query = inspection_queries(self.schema).delete
        return await self._execute(query, self._params(id=job_id)) > 0

    async def retry_job(self, job_id: str) -> bool:
        """Move one failed or timeout job back to `waiting`; return whether it was there."""
        rows = await self._fetch(inspection_queries(self.schema).retry, self._params(id=job_id))
        moved = int(rows[0][0]) > 0
        if moved:
            self._bell.ring()
        return moved

    async def group_counts(self) -> dict[str, GroupCounts]:
        """Return the waiting and reserved jobs of every group that has some."""
        rows = await self._fetch(inspection_queries(self.schema).groups, self._params())
        return counts_by_group(rows)

    # --- moves -----------------------------------------------------------------------------

    async def _reserve(self, limit: int) -> tuple[list[PersistedJob], float]:
        """Reserve due jobs (recovering expired leases) in one statement.

        Returns:
            The jobs reserved, oldest first, and when none, how long to wait before looking
            again (until the next delayed job is due or lease runs out, within poll_interval).
        """
        params = self._params(
            limit=limit,
            lease_ms=to_ms(self.lease),
            lease_expired=LEASE_EXPIRED,
            token=new_token(),  # one per statement: each job is fenced by its (id, token) pair
        )
        async with self._connection() as connection:
            if not self._limits.is_empty:
                return await self._reserve_limited(connection, params)
            cursor = await connection.execute(self._queries.reserve, params)
            rows = await cursor.fetchall()
            if rows:
                # RETURNING has no order: the pop's is priority first, then due order
                rows.sort(key=_pop_order)
                return await self._readable(connection, rows, params["token"]), 0.0
            cursor = await connection.execute(self._queries.next_event, params)
            now_ms, next_ms = await _one(cursor)
        return [], self._wait_seconds(now_ms, next_ms)

    async def _reserve_limited(
        self, connection: psycopg.AsyncConnection[Any], params: Params
    ) -> tuple[list[PersistedJob], float]:
        """Reserve due jobs under this driver's limits (see postgres/flow.py)."""
        queries = flow_queries(self.schema)
        popped = await reserve_limited(
            connection, queries, self._limits, params, params["lease_ms"]
        )
        self._held_back.update(popped.held)
        if not popped.rows:
            poll_seconds = self.poll_interval.total_seconds()
            if popped.wait_ms is None:
                return [], poll_seconds
            # Never 0: the jobs due now are held back, not locked by another pop.
            return [], max(min(poll_seconds, popped.wait_ms / 1000), _DUE_RETRY_SECONDS)
        rows = sorted(popped.rows, key=_pop_order)
        return await self._readable(connection, rows, params["token"]), 0.0

    async def _readable(
        self, connection: psycopg.AsyncConnection[Any], rows: list[Any], token: str
    ) -> list[PersistedJob]:
        """Return the jobs of rows reserved under `token`; park the unreadable ones in `failed`."""
        jobs = []
        for row in rows:
            try:
                jobs.append(_job(row, token))
            except DecodeError as exc:  # a row edited behind the driver's back: parked, not lost
                params = self._params(
                    id=row[0],
                    token=token,
                    state=FAILED,
                    delay_us=0,
                    backoff_ms=row[4],
                    attempts=row[5],
                    last_error=f"DecodeError: {exc}",
                    wake=self._finished_payload,
                )
                await connection.execute(self._queries.settle, params)
        return jobs

    def _wait_seconds(self, now_ms: int, next_ms: int | None) -> float:
        poll_seconds = self.poll_interval.total_seconds()
        if next_ms is None:
            return poll_seconds
        # Zero: a job is already due, just recovered from an expired lease (the next look
        # takes it) or locked by a worker about to take it.
        return min(poll_seconds, max(next_ms - now_ms, 0) / 1000)

    async def _settle(self, job: PersistedJob, state: int, delay: timedelta) -> bool:
        """Move a reserved job to `state` after `delay`; return False when its token is stale."""
        if job.token is None:
            return False
        params = self._params(
            id=job.id,
            token=job.token,
            state=state,
            delay_us=delay // _MICROSECOND,
            backoff_ms=to_ms(job.backoff),
            attempts=job.attempts,
            last_error=job.last_error,
            wake=self._finished_payload if state == FAILED else self.name,
        )
        moved = await self._moved(self._queries.settle, params)
        self._freed()
        if moved and state == FAILED:
            self._finished.ring()
        return moved

    def _freed(self) -> None:
        """A reservation ended: wake this driver's pops held back by a concurrency limit.

        Pops of other workers see it at their next poll (or a notification: fail, retry and
        release notify on commit).
        """
        if self._limits.limits_concurrency:
            self._bell.ring()

    def _params(self, **values: Any) -> Params:
        now_us = None if self._clock is None else self._clock.now_us()
        return {
            "queue": self.name,
            "now_us": now_us,
            "channel": self._channel,
            "finished": self._finished_payload,
            **values,
        }

    def _held_params(self, jobs: Sequence[PersistedJob], **values: Any) -> Params:
        """Return the parameters of a batch statement fenced by `(id, token)` pairs."""
        ids = [job.id for job in jobs]
        return self._params(ids=ids, tokens=[job.token for job in jobs], **values)

    def _push_params(self, jobs: Sequence[tuple[PersistedJob, timedelta]]) -> Params:
        # First push of an id wins, as it would pushed one by one; PostgreSQL also refuses to
        # upsert one row twice in a statement.
        unique = list({job.id: (job, delay) for job, delay in reversed(jobs)}.values())[::-1]
        return self._params(
            ids=[job.id for job, _ in unique],
            types=[job.type for job, _ in unique],
            values=[job.value for job, _ in unique],
            handle_timeouts=[to_ms(job.handle_timeout) for job, _ in unique],
            backoffs=[to_ms(job.backoff) for job, _ in unique],
            attempts=[job.attempts for job, _ in unique],
            max_attempts=[job.max_attempts for job, _ in unique],
            last_errors=[job.last_error for job, _ in unique],
            delays_us=[delay // _MICROSECOND for _, delay in unique],
            headers=[headers_column(job.headers) for job, _ in unique],
            priorities=[job.priority for job, _ in unique],
            groups=[job.group for job, _ in unique],
            keep_results=[
                None if job.keep_result is None else to_ms(job.keep_result) for job, _ in unique
            ],
        )

    # --- plumbing --------------------------------------------------------------------------

    async def _execute(self, query: bytes, params: Params) -> int:
        async with self._connection() as connection:
            cursor = await connection.execute(query, params)
            return cursor.rowcount

    async def _fetch(self, query: bytes, params: Params) -> list[tuple[Any, ...]]:
        async with self._connection() as connection:
            cursor = await connection.execute(query, params)
            return await cursor.fetchall()

    async def _moved(self, query: bytes, params: Params) -> bool:
        """Run a move that answers `moved, notified`; return whether a row moved."""
        rows = await self._fetch(query, params)
        return int(rows[0][0]) > 0

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        resources = await self._resources()
        pool = resources.pool
        with self._translate_errors(), pool_waits(self._store, pool.get_stats, self._pool_timeout):
            async with pool.connection() as connection:
                yield connection

    async def _resources(self) -> _LoopResources:
        """Return this loop's pool, opening it (and migrating the schema) on first use."""
        loop = asyncio.get_running_loop()
        resources = self._loops.get(loop)
        if resources is None:
            resources = self._loops[loop] = _LoopResources(self._new_pool())
        if not resources.opened or not self._migrated:
            async with resources.lock:
                if not self._migrated:
                    await self.migrate()
                if not resources.opened:
                    await resources.pool.open(wait=False)
                    resources.opened = True
        return resources

    async def _listening(self, *, finished: bool = False) -> None:
        """Start this loop's LISTEN connection, before the first look for jobs.

        With `finished`, the one for `result()` waiters instead: it rings when jobs finish.
        """
        resources = await self._resources()
        kind = "finished" if finished else "pushed"
        if kind in resources.listeners:
            return
        async with resources.lock:
            if kind not in resources.listeners:
                payload, bell = (
                    (self._finished_payload, self._finished)
                    if finished
                    else (self.name, self._bell)
                )
                listener = Listener(self._connect, self._channel, payload, bell)
                with self._translate_errors():
                    await listener.start()
                resources.listeners[kind] = listener

    def _new_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        min_size, max_size = self._pool_sizes
        return AsyncConnectionPool(
            self._dsn,
            kwargs=self._connect_options(),
            min_size=min_size,
            max_size=max_size,
            open=False,
            # A server restart leaves every pooled connection broken: check before lending.
            check=AsyncConnectionPool.check_connection,
            configure=_plan_for_pops,
            timeout=self._pool_timeout.total_seconds(),
            name=f"corequeue {self.schema}.{self.name}",
        )

    def _new_sync_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        min_size, max_size = self._pool_sizes
        return ConnectionPool(
            self._dsn,
            kwargs=self._connect_options(),
            min_size=min_size,
            max_size=max_size,
            open=False,  # and no check before lending: SyncPool.run() retries on a dead one
            timeout=self._pool_timeout.total_seconds(),
            name=f"corequeue sync {self.schema}.{self.name}",
        )

    def _migrate_sync(self) -> None:
        """Create or migrate the schema once, before the first synchronous push."""
        if self._migrated:
            return
        with self._sync_migrate_lock:
            if not self._migrated:
                # Once per driver: the migration steps exist in async form only, so they run
                # on a short-lived event loop in this thread (no thread of the driver's).
                asyncio.run(self.migrate())

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self._dsn, **self._connect_options())

    def _connect_options(self) -> dict[str, Any]:
        return connect_options(self._dsn_options, self._pool_timeout)

    def _translate_errors(self) -> AbstractContextManager[None]:
        return store_errors(self._store, self._dsn_options)


@dataclass
class _LoopResources:
    """What one event loop uses: a pool, and a LISTEN connection once it pops."""

    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]]
    opened: bool = False
    listeners: dict[str, Listener] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def close(self) -> None:
        for listener in self.listeners.values():
            await listener.close()
        await self.pool.close()


def _connection_option(options: Mapping[str, Any]) -> Connection | None:
    """Return the `connection` push option; raise InvalidOption for anything else."""
    unknown = sorted(set(options) - {"connection"})
    if unknown:
        raise InvalidOption(
            f"unknown push option(s) {', '.join(unknown)}: PostgreSQL takes only connection"
        )
    connection = options.get("connection")
    if connection is None or isinstance(connection, psycopg.AsyncConnection | psycopg.Connection):
        return connection
    raise InvalidOption(
        f"connection must be a psycopg Connection or AsyncConnection, "
        f"got {type(connection).__name__}"
    )


async def _execute_on(connection: Connection, query: bytes, params: Params) -> None:
    if isinstance(connection, psycopg.AsyncConnection):
        await connection.execute(query, params)
    else:
        connection.execute(query, params)


async def _one(cursor: psycopg.AsyncCursor[Any]) -> tuple[Any, ...]:
    row = await cursor.fetchone()
    if row is None:
        raise DriverError("PostgreSQL returned no row where one was expected")
    return tuple(row)


def _check_options(
    name: str, schema: str, pool_min_size: int, pool_max_size: int, pool_timeout: timedelta
) -> None:
    if not name:
        raise InvalidOption("queue name must not be empty")
    if not _SCHEMA_NAME.match(schema):
        raise InvalidOption(
            f"schema must be an identifier of letters, digits and underscores, at most 50 "
            f"characters, not starting with a digit: {schema!r}"
        )
    if pool_min_size < 0 or pool_max_size < max(pool_min_size, 1):
        raise InvalidOption(
            f"need 0 <= pool_min_size <= pool_max_size and pool_max_size >= 1, "
            f"got {pool_min_size} and {pool_max_size}"
        )
    if pool_timeout <= timedelta(0):
        raise InvalidOption(f"pool_timeout must be positive, got {pool_timeout}")


def _pop_order(row: Sequence[Any]) -> tuple[int, int, int]:
    """The order of a pop's rows: highest priority first, then due time, then arrival."""
    return (-_whole(row[PRIORITY_COLUMN]), row[-2], row[-1])


def _job(row: Sequence[Any], token: str) -> PersistedJob:
    """Return the job of a row reserved under `token`, carrying that token."""
    job = job_from_columns(row[:JOB_COLUMN_COUNT])
    job.token = token
    return job


def _keeps(job: PersistedJob) -> bool:
    """Whether an ack of `job` keeps it in `completed` (a positive `keep_result`)."""
    return job.keep_result is not None and job.keep_result > timedelta(0)


def _not_matched(jobs: Iterable[PersistedJob], rows: Iterable[Sequence[Any]]) -> list[PersistedJob]:
    """Return the jobs whose `(id, token)` pair is not among the `id, token` rows, in order."""
    matched = {(row[0], row[1]) for row in rows}
    return [job for job in jobs if (job.id, job.token) not in matched]


def _view(row: Sequence[Any]) -> JobView:
    """Return the JobView of a row `state, due_ms, is_later, <envelope columns>`."""
    state, due_ms, is_later = row[0], row[1], row[2]
    if state == PENDING:
        channel = Channel.DELAYED if is_later else Channel.WAITING
    else:
        channel = next(c for c, s in _PARKED_STATE.items() if s == state)
    shows_due = channel in (Channel.DELAYED, Channel.RESERVED, Channel.COMPLETED)
    return JobView(readable_or_not(row[3:]), channel, instant_of_ms(due_ms) if shows_due else None)


def _whole(value: Any) -> int:
    """Return an int column as it is, and anything else as 0 (for sorting only)."""
    return value if isinstance(value, int) else 0


async def _plan_for_pops(connection: psycopg.AsyncConnection[Any]) -> None:
    """Set up a pooled connection so that pops keep their plan whatever the statistics say.

    A pop reads the jobs_ready index in pop order and stops after `limit` due rows. With
    statistics taken before many jobs fell due (a million delayed jobs analysed, then a
    hundred thousand pushed to run now), the planner believes few rows are due and prefers a
    range scan of every due row followed by a sort: 77 ms per pop instead of 1 ms, a drain
    beside a million delayed jobs at a third of its speed. Every statement of the driver has
    an index in the order it reads, so sorting is only ever the planner's mistake here:
    `enable_sort = off` takes it out of the choice (a statement with no other way still sorts).
    """
    await connection.execute("SET enable_sort = off")
