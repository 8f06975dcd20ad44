"""SQLiteDriver: the embedded, durable default. One file, WAL mode, one transaction per move.

All queues of a file share one table. A row's `state` says where the job is; `due_ms` is when a
pending job may run (so `waiting` and `delayed` are one state split by the clock, and a job
becomes waiting at its due time with nothing to promote) or when a reserved job's lease runs
out. Due times are whole milliseconds, rounded up from the clock's microseconds and compared
with now rounded down, so nothing runs before its exact due instant (see `due_ms`). Several
processes may share the file: SQLite's write lock (`BEGIN IMMEDIATE`) hands each job
to exactly one of them.

A reserved row carries the `token` of the pop that reserved it; settling statements match it in
their WHERE clause, and every move out of `reserved` clears it. One thread per driver owns the
connection: every sqlite3 object is created, used and freed there. Async calls reach it through
the event loop's executor machinery; `push_sync` submits to it directly and waits, with no loop.

Periodic schedules keep their last enqueued slot in `corequeue_periodic`; the conditional
upsert that advances it and the push of the slot's job share one `BEGIN IMMEDIATE`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from corequeue.drivers.base import (
    DEFAULT_LEASE,
    DEFAULT_POP_TIMEOUT,
    LEASE_EXPIRED,
    THROUGHPUT_HISTORY,
    Channel,
    Clock,
    GroupCounts,
    JobView,
    QueueInfo,
    SystemClock,
    Throughput,
    WorkerInfo,
    check_listing,
    check_pop_limit,
    due_ms,
    instant_of_ms,
    interval_of,
    parse_channel,
    reloadable,
)
from corequeue.drivers.finished import Pause, wait_finished
from corequeue.drivers.sql_state import (
    COMPLETED,
    FAILED,
    JOB_COLUMN_COUNT,
    JOB_COLUMNS,
    PARKED_STATE,
    PENDING,
    PRIORITY_COLUMN,
    RESERVED,
    TIMEOUT,
    counts_by_group,
    headers_column,
    job_from_columns,
    readable_or_not,
    worker_of,
)
from corequeue.drivers.sqlite_flow import RATES_TABLE, choose
from corequeue.drivers.wakeup import Bell
from corequeue.errors import DecodeError, InvalidOption, QueueEmpty, StoreUnavailable
from corequeue.job import PersistedJob, new_token, to_ms
from corequeue.limits import HeldBack, Limits

T = TypeVar("T")

SCHEMA_VERSION: Final = 6
"""Version 2 added the `token` column (fenced settlement), version 3 the `corequeue_periodic`
table (periodic jobs), version 4 the `headers` column (middleware headers, JSON text or NULL),
version 5 the `priority` and `job_group` columns and the `corequeue_queues` table (flow
control), version 6 the `keep_result_ms`, `result`, `progress`, `progress_message` and
`cancel_token` columns and the `corequeue_workers` and `corequeue_throughput` tables (kept
results, progress, cancelling a running job, worker heartbeats, fleet-wide throughput); an
older file is upgraded."""

_META = "CREATE TABLE IF NOT EXISTS corequeue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS corequeue_jobs (
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    state INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    type TEXT NOT NULL,
    value BLOB NOT NULL,
    handle_timeout_ms INTEGER NOT NULL,
    backoff_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    last_error TEXT,
    token TEXT,
    headers TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    job_group TEXT,
    keep_result_ms INTEGER,
    result BLOB,
    progress REAL,
    progress_message TEXT,
    cancel_token TEXT,
    UNIQUE (queue, id)
);
CREATE INDEX IF NOT EXISTS corequeue_jobs_due ON corequeue_jobs (queue, state, due_ms);
"""

# Flow control (schema 5). Pops walk this index: highest priority first, then due order; the
# due jobs of each priority are one range of it, whatever the delayed jobs around them.
_PRIORITY_INDEX = """
CREATE INDEX IF NOT EXISTS corequeue_jobs_priority
ON corequeue_jobs (queue, state, priority DESC, due_ms)
"""

# One row per queue that was ever paused: the flag pops read in their transaction.
_QUEUES_TABLE = """
CREATE TABLE IF NOT EXISTS corequeue_queues (
    queue TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
)
"""

_PERIODIC_TABLE = """
CREATE TABLE IF NOT EXISTS corequeue_periodic (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    last_slot_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, name)
)
"""

_WORKERS_TABLE = """
CREATE TABLE IF NOT EXISTS corequeue_workers (
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    running INTEGER NOT NULL,
    PRIMARY KEY (queue, id)
)
"""

_THROUGHPUT_TABLE = """
CREATE TABLE IF NOT EXISTS corequeue_throughput (
    queue TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    processed INTEGER NOT NULL,
    retried INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    PRIMARY KEY (queue, start_ms)
)
"""

_COUNT = """
INSERT INTO corequeue_throughput (queue, start_ms, processed, retried, failed)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (queue, start_ms) DO UPDATE SET processed = processed + excluded.processed,
    retried = retried + excluded.retried, failed = failed + excluded.failed
"""

_FORGET_COUNTS = """
DELETE FROM corequeue_throughput WHERE rowid IN (
    SELECT rowid FROM corequeue_throughput WHERE queue = ? AND start_ms < ? LIMIT 100
)
"""

_UPGRADES: Final = {
    2: ("ALTER TABLE corequeue_jobs ADD COLUMN token TEXT",),
    3: (_PERIODIC_TABLE,),
    4: ("ALTER TABLE corequeue_jobs ADD COLUMN headers TEXT",),
    5: (
        "ALTER TABLE corequeue_jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE corequeue_jobs ADD COLUMN job_group TEXT",
        _QUEUES_TABLE,
        RATES_TABLE,
    ),
    6: (
        "ALTER TABLE corequeue_jobs ADD COLUMN keep_result_ms INTEGER",
        "ALTER TABLE corequeue_jobs ADD COLUMN result BLOB",
        "ALTER TABLE corequeue_jobs ADD COLUMN progress REAL",
        "ALTER TABLE corequeue_jobs ADD COLUMN progress_message TEXT",
        "ALTER TABLE corequeue_jobs ADD COLUMN cancel_token TEXT",
        _WORKERS_TABLE,
        _THROUGHPUT_TABLE,
    ),
}
"""The statements that bring a file from version n - 1 to version n."""

_COLUMNS = (
    "id, type, value, handle_timeout_ms, backoff_ms, attempts, max_attempts, last_error, "
    "headers, priority, job_group, keep_result_ms, result"
)
_READ_COLUMNS = JOB_COLUMNS  # _COLUMNS, then what only the store writes: progress
assert f"{_COLUMNS}, progress, progress_message" == _READ_COLUMNS

_PUSH = f"""
INSERT INTO corequeue_jobs (queue, state, due_ms, {_COLUMNS})
VALUES (?, {PENDING}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (queue, id) DO UPDATE SET
    state = {PENDING}, due_ms = excluded.due_ms, type = excluded.type, value = excluded.value,
    handle_timeout_ms = excluded.handle_timeout_ms, backoff_ms = excluded.backoff_ms,
    attempts = excluded.attempts, max_attempts = excluded.max_attempts,
    last_error = excluded.last_error, headers = excluded.headers, priority = excluded.priority,
    job_group = excluded.job_group, keep_result_ms = excluded.keep_result_ms,
    result = excluded.result, token = NULL, progress = NULL, progress_message = NULL,
    cancel_token = NULL
WHERE corequeue_jobs.state >= {FAILED}
"""

# Highest priority first; among equals, due order. rowid breaks ties between equal due times:
# it grows with every insert, so waiting is FIFO. A paused queue hands out nothing.
_POP = f"""
UPDATE corequeue_jobs SET state = {RESERVED}, due_ms = ?, token = ?
WHERE rowid IN (
    SELECT rowid FROM corequeue_jobs
    WHERE queue = ? AND state = {PENDING} AND due_ms <= ?
    AND NOT EXISTS (SELECT 1 FROM corequeue_queues WHERE queue = ? AND paused)
    ORDER BY priority DESC, due_ms, rowid LIMIT ?
)
RETURNING {_READ_COLUMNS}, rowid
"""

# The rows a limited pop chose (sqlite_flow.choose), by rowid: integers the driver formats in.
_POP_CHOSEN = f"""
UPDATE corequeue_jobs SET state = {RESERVED}, due_ms = ?, token = ?
WHERE rowid IN ({{rowids}})
RETURNING {_READ_COLUMNS}, rowid
"""

_SET_PAUSED = """
INSERT INTO corequeue_queues (queue, paused) VALUES (?, ?)
ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused
"""

_IS_PAUSED = "SELECT paused FROM corequeue_queues WHERE queue = ?"

_RECOVER = f"""
UPDATE corequeue_jobs SET
    state = CASE WHEN attempts < max_attempts THEN {PENDING} ELSE {TIMEOUT} END,
    attempts = attempts + (attempts < max_attempts),
    last_error = ?, due_ms = ?, token = NULL
WHERE queue = ? AND state = {RESERVED} AND due_ms <= ?
"""

_NEXT_EVENT = f"""
SELECT MIN(due_ms) FROM corequeue_jobs WHERE queue = ? AND state IN ({PENDING}, {RESERVED})
"""

# A paused queue waits for lease expiries only: resume() wakes its pops (others' poll).
_NEXT_LEASE_END = f"SELECT MIN(due_ms) FROM corequeue_jobs WHERE queue = ? AND state = {RESERVED}"

# Fencing: every statement that settles a reserved job names the holder's token in its WHERE
# clause, so the check and the move are one atomic step. `token = NULL` is never true.
_HELD = f"queue = ? AND id = ? AND state = {RESERVED} AND token = ?"

_SETTLE = f"""
UPDATE corequeue_jobs
SET state = ?, due_ms = ?, backoff_ms = ?, attempts = ?, last_error = ?, token = NULL
WHERE {_HELD}
"""

_RELEASE = f"UPDATE corequeue_jobs SET state = {PENDING}, due_ms = ?, token = NULL WHERE {_HELD}"

_ACK = f"DELETE FROM corequeue_jobs WHERE {_HELD}"

# An ack that keeps the result: the job stays, in `completed` until `due_ms`.
_COMPLETE = f"""
UPDATE corequeue_jobs
SET state = {COMPLETED}, due_ms = ?, keep_result_ms = ?, result = ?, token = NULL
WHERE {_HELD}
"""

# Oldest first, at most `limit` rows: completed ones past their due time, failed and timeout
# ones parked before the retention cutoff (-1 when the queue keeps them).
_PRUNE = f"""
DELETE FROM corequeue_jobs WHERE rowid IN (
    SELECT rowid FROM corequeue_jobs
    WHERE queue = ? AND (
        (state = {COMPLETED} AND due_ms <= ?) OR (state IN ({FAILED}, {TIMEOUT}) AND due_ms <= ?)
    )
    ORDER BY due_ms LIMIT ?
)
"""

# Stores the progress the holder sends (NULL keeps the stored one) and answers whether a cancel
# request names this reservation.
_RENEW = f"""
UPDATE corequeue_jobs SET due_ms = ?, progress = COALESCE(?, progress),
    progress_message = COALESCE(?, progress_message)
WHERE {_HELD}
RETURNING COALESCE(cancel_token = token, 0)
"""

_REQUEST_CANCEL = f"""
UPDATE corequeue_jobs SET cancel_token = token WHERE queue = ? AND id = ? AND state = {RESERVED}
"""

# A row written behind the driver's back that is no job (see job_from_columns): parked, not lost.
_PARK_UNREADABLE = f"""
UPDATE corequeue_jobs SET state = {FAILED}, due_ms = ?, last_error = ?, token = NULL
WHERE rowid = ?
"""

_INFO = """
SELECT state, due_ms > ?, COUNT(*) FROM corequeue_jobs WHERE queue = ? GROUP BY 1, 2
"""

_BEAT = """
INSERT INTO corequeue_workers (queue, id, hostname, pid, started_ms, last_seen_ms, running)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (queue, id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
    running = excluded.running
"""

_FORGET_SILENT = """
DELETE FROM corequeue_workers WHERE rowid IN (
    SELECT rowid FROM corequeue_workers WHERE queue = ? AND last_seen_ms < ? LIMIT 100
)
"""

# Changes a row only when the slot is later than the stored one: rowcount 0 means taken.
_ADVANCE_SLOT = """
INSERT INTO corequeue_periodic (queue, name, last_slot_ms) VALUES (?, ?, ?)
ON CONFLICT (queue, name) DO UPDATE SET last_slot_ms = excluded.last_slot_ms
WHERE corequeue_periodic.last_slot_ms < excluded.last_slot_ms
"""


class SQLiteDriver:
    """Stores a named queue in one SQLite file: zero set-up, durable on one machine.

    Args:
        path: The database file, created on first use with its folder.
        name: The queue's name; several queues may share one file.
        pop_timeout: How long `pop()` waits for a job before raising QueueEmpty.
        lease: How long a popped job stays reserved without a renewal.
        poll_interval: How often an idle `pop()` looks for jobs pushed by other processes
            (jobs pushed through this driver wake it at once).
        synchronous: SQLite's `synchronous` setting: "FULL" (default) survives power loss;
            "NORMAL" is faster and survives process crashes, not power loss.
        clock: Source of time; tests pass a FakeClock.

    Example:
        >>> driver = SQLiteDriver("jobs.db", name="emails")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path = "corequeue.db",
        name: str = "default",
        *,
        pop_timeout: timedelta = DEFAULT_POP_TIMEOUT,
        lease: timedelta = DEFAULT_LEASE,
        poll_interval: timedelta = timedelta(milliseconds=20),
        synchronous: str = "FULL",
        clock: Clock | None = None,
    ) -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise InvalidOption(f"synchronous must be OFF, NORMAL, FULL or EXTRA: {synchronous!r}")
        if not name:
            raise InvalidOption("queue name must not be empty")
        self.path = Path(path)
        self.name = name
        self.pop_timeout = pop_timeout
        self.lease = lease
        self.poll_interval = poll_interval
        self._synchronous = synchronous.upper()
        self._clock = clock or SystemClock()
        self._thread: _ConnectionThread | None = None
        self._thread_lock = threading.Lock()
        self._pushed = Bell()
        self._limits = Limits()
        self._held_back: Counter[HeldBack] = Counter()
        self._finished = Bell()

    def __repr__(self) -> str:
        return f"SQLiteDriver({str(self.path)!r}, name={self.name!r})"

    @property
    def clock(self) -> Clock:
        """The clock due times are decided by: the one given, or the machine's."""
        return self._clock

    async def push(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting`, or in `delayed` until `delay` has passed.

        Raises:
            InvalidOption: For any option: this driver takes none.
        """
        await self.push_many([(job, delay)], **options)

    async def push_many(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], **options: Any
    ) -> None:
        """Push every `(job, delay)` pair in one transaction.

        Raises:
            InvalidOption: For any option: this driver takes none.
        """
        rows = self._push_rows(jobs, options)
        await self._run(partial(_execute_many, sql=_PUSH, rows=rows))
        self._pushed.ring()

    def push_sync(self, job: PersistedJob, delay: timedelta, **options: Any) -> None:
        """Put `job` in `waiting` or `delayed` from synchronous code, on any thread.

        The push runs on the driver's connection thread, as every call does; the caller waits
        for it without an event loop.

        Raises:
            InvalidOption: For any option: this driver takes none.
        """
        rows = self._push_rows([(job, delay)], options)
        with self._store_errors():
            self._connection_thread().run_sync(partial(_execute_many, sql=_PUSH, rows=rows))
        self._pushed.ring()

    async def pop(self) -> PersistedJob:
        """Reserve the next due job under a fresh token; raise QueueEmpty after `pop_timeout`."""
        jobs = await self.pop_many(1)
        return jobs[0]

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve up to `limit` due jobs (at least one) under one fresh token.

        Raises:
            QueueEmpty: No job fell due within `pop_timeout`.
            InvalidOption: `limit` is below 1.
        """
        check_pop_limit(limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pop_timeout.total_seconds()
        poll_seconds = self.poll_interval.total_seconds()
        while True:
            seen = self._pushed.rings  # a push from another thread during the look is not missed
            now_us = self._clock.now_us()
            now = now_us // 1_000  # rounded down: what is due at `now` is due at `now_us`
            reserve = partial(
                self._reserve,
                now=now,
                now_us=now_us,
                until=due_ms(now_us, self.lease),
                limit=limit,
                token=new_token(),
            )
            jobs, next_event_ms = await self._run(reserve)
            if jobs:
                return jobs
            wait = deadline - loop.time()
            if wait <= 0:
                raise QueueEmpty()
            if next_event_ms is not None:
                wait = min(wait, max(next_event_ms - now, 0) / 1000)
            await self._pushed.wait(seen, min(wait, poll_seconds))

    async def ack(self, job: PersistedJob) -> bool:
        """Remove a reserved job (or keep it in `completed`); False when its token is stale."""
        return not await self.ack_many([job])

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Ack the jobs still reserved under their tokens; return the stale ones.

        One transaction, so one sync to disk, for the whole batch.
        """
        if not jobs:
            return []
        now_us = self._clock.now_us()
        statements = [self._ack_statement(job, now_us) for job in jobs]
        changed = await self._run(partial(_execute_statements, statements=statements))
        self._finished.ring()
        self._freed()
        return [job for job, done in zip(jobs, changed, strict=True) if not done]

    async def fail(self, job: PersistedJob) -> bool:
        """Move a reserved job to `failed`; False (nothing changed) when its token is stale."""
        failed = await self._settle(job, FAILED, self._clock.now_ms())
        self._finished.ring()
        return failed

    async def retry(self, job: PersistedJob) -> bool:
        """Move a reserved job to `delayed` for its backoff; False when its token is stale."""
        moved = await self._settle(job, PENDING, due_ms(self._clock.now_us(), job.backoff))
        if moved:
            self._pushed.ring()
        return moved

    async def renew(self, job: PersistedJob) -> bool:
        """Extend the lease of a reserved job by `lease` from now; False when it is lost."""
        return not await self.renew_many([job])

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> list[PersistedJob]:
        """Extend the leases of reserved jobs by `lease` from now; return those lost.

        One transaction for the whole batch.
        """
        if not jobs:
            return []
        until = due_ms(self._clock.now_us(), self.lease)
        rows = [(until, *_progress_values(job), *self._held(job)) for job in jobs]
        answers = await self._run(partial(_renew_each, rows=rows))
        lost = []
        for job, answer in zip(jobs, answers, strict=True):
            if answer is None:
                lost.append(job)
            else:
                job.cancel_requested = bool(answer)
        return lost

    async def release(self, job: PersistedJob) -> bool:
        """Put a reserved job back in `waiting` without counting an attempt.

        Returns False, changing nothing, when the caller's token is stale.
        """
        if job.token is None:
            return False
        moved = await self._write(_RELEASE, (self._clock.now_ms(), *self._held(job))) > 0
        if moved:
            self._pushed.ring()
        return moved

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job, or record a cancel request for a reserved one."""
        return await self._run(partial(_cancel, name=self.name, job_id=job_id))

    async def reload(self, channel: Channel | str) -> int:
        """Move every job of `failed` or `timeout` back to `waiting`."""
        state = PARKED_STATE[reloadable(channel)]
        sql = (
            f"UPDATE corequeue_jobs SET state = {PENDING}, due_ms = ? WHERE queue = ? AND state = ?"
        )
        moved = await self._write(sql, (self._clock.now_ms(), self.name, state))
        self._pushed.ring()
        return moved

    async def flush(self, channel: Channel | str) -> None:
        """Delete every job of `channel`."""
        parsed = parse_channel(channel)
        if parsed in PARKED_STATE:
            sql = "DELETE FROM corequeue_jobs WHERE queue = ? AND state = ?"
            await self._write(sql, (self.name, PARKED_STATE[parsed]))
            return
        comparison = ">" if parsed is Channel.DELAYED else "<="
        sql = (
            f"DELETE FROM corequeue_jobs WHERE queue = ? AND state = {PENDING} "
            f"AND due_ms {comparison} ?"
        )
        await self._write(sql, (self.name, self._clock.now_ms()))

    async def info(self) -> QueueInfo:
        """Return the number of jobs in each channel."""
        now = self._clock.now_ms()
        rows = await self._run(lambda db: db.execute(_INFO, (now, self.name)).fetchall())
        counts = dict.fromkeys(Channel, 0)
        for state, in_future, count in rows:
            if state == PENDING:
                counts[Channel.DELAYED if in_future else Channel.WAITING] += count
            else:
                channel = next(c for c, s in PARKED_STATE.items() if s == state)
                counts[channel] += count
        return QueueInfo(**{channel.value: count for channel, count in counts.items()})

    async def wait_finished(self, job_id: str, wait: timedelta | None) -> JobView | None:
        """Return job `job_id` once finished, or where it is after `wait`; None if unknown.

        Settles through this driver wake the wait at once; those of other processes sharing
        the file are seen by looks backing off from 5 ms to `poll_interval` * 10 (at least
        100 ms).
        """
        cap = max(self.poll_interval.total_seconds() * 10, 0.1)
        return await wait_finished(lambda: self.get_job(job_id), Pause(self._finished, cap), wait)

    async def prune(self, failed_retention: timedelta | None, limit: int) -> int:
        """Delete up to `limit` finished jobs past their retention (see `Driver.prune`)."""
        now = self._clock.now_ms()
        cutoff = -1 if failed_retention is None else now - to_ms(failed_retention)
        return await self._write(_PRUNE, (self.name, now, cutoff, limit))

    async def enqueue_slot(self, name: str, slot_ms: int, job: PersistedJob) -> bool:
        """Advance schedule `name` to `slot_ms` and push `job`, in one transaction.

        See `Driver.enqueue_slot`. A slot after the clock's now changes nothing; the upsert
        of the last slot and the push share one `BEGIN IMMEDIATE`, so a push that fails rolls
        the advance back, and other processes on the file wait for the write lock.
        """
        now_us = self._clock.now_us()
        if slot_ms * 1_000 > now_us:
            return False
        step = partial(
            _advance_and_push,
            slot=(self.name, name, slot_ms),
            push=(self.name, due_ms(now_us, timedelta(0)), *_row(job)),
        )
        enqueued = await self._run(step)
        if enqueued:
            self._pushed.ring()
        return enqueued

    async def schedule_slots(self) -> dict[str, int]:
        """Return the last enqueued slot of every schedule of the queue, by name."""
        sql = "SELECT name, last_slot_ms FROM corequeue_periodic WHERE queue = ?"
        rows = await self._run(lambda db: db.execute(sql, (self.name,)).fetchall())
        return {str(name): int(last) for name, last in rows}

    async def forget_schedule(self, name: str) -> bool:
        """Delete the last slot of schedule `name`; return whether there was one."""
        sql = "DELETE FROM corequeue_periodic WHERE queue = ? AND name = ?"
        return await self._write(sql, (self.name, name)) > 0

    def set_limits(self, limits: Limits | None) -> None:
        """Enforce `limits` at every pop of this driver (see `Driver.set_limits`)."""
        self._limits = limits or Limits()

    def held_back(self) -> dict[HeldBack, int]:
        """Return how many times each limit held a due job back in this driver's pops."""
        return dict(self._held_back)

    async def pause(self) -> None:
        """Hand out no job until `resume()`, in every process sharing the file."""
        await self._write(_SET_PAUSED, (self.name, 1))

    async def resume(self) -> None:
        """Hand out jobs again after `pause()`."""
        await self._write(_SET_PAUSED, (self.name, 0))
        self._pushed.ring()

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        row = await self._run(lambda db: db.execute(_IS_PAUSED, (self.name,)).fetchone())
        return bool(row and row[0])

    async def beat(self, worker: WorkerInfo) -> None:
        """Record a heartbeat of `worker` now; forget up to 100 workers silent for a lease."""
        now = self._clock.now_ms()
        started = int(worker.started_at.timestamp() * 1000)
        row = (self.name, worker.id, worker.hostname, worker.pid, started, now, worker.running)
        silent = (self.name, now - to_ms(self.lease))
        await self._run(
            partial(_execute_statements, statements=[(_BEAT, row), (_FORGET_SILENT, silent)])
        )

    async def forget_worker(self, worker_id: str) -> None:
        """Delete the heartbeat record of `worker_id`."""
        sql = "DELETE FROM corequeue_workers WHERE queue = ? AND id = ?"
        await self._write(sql, (self.name, worker_id))

    async def workers(self) -> list[WorkerInfo]:
        """Return the workers that beat within one lease of now, by id."""
        horizon = self._clock.now_ms() - to_ms(self.lease)
        sql = (
            "SELECT id, hostname, pid, started_ms, last_seen_ms, running FROM corequeue_workers "
            "WHERE queue = ? AND last_seen_ms >= ? ORDER BY id"
        )
        rows = await self._run(lambda db: db.execute(sql, (self.name, horizon)).fetchall())
        return [worker_of(row) for row in rows]

    async def count_finished(self, processed: int, retried: int, failed: int) -> None:
        """Add finished attempts to the current interval's counters; forget day-old ones."""
        now = self._clock.now_ms()
        statements = [
            (_COUNT, (self.name, interval_of(now), processed, retried, failed)),
            (_FORGET_COUNTS, (self.name, now - to_ms(THROUGHPUT_HISTORY))),
        ]
        await self._run(partial(_execute_statements, statements=statements))

    async def throughput(self, since: datetime) -> list[Throughput]:
        """Return the counters of the intervals starting at or after `since`, oldest first."""
        sql = (
            "SELECT start_ms, processed, retried, failed FROM corequeue_throughput "
            "WHERE queue = ? AND start_ms >= ? ORDER BY start_ms"
        )
        since_ms = int(since.timestamp() * 1000)
        rows = await self._run(lambda db: db.execute(sql, (self.name, since_ms)).fetchall())
        return [Throughput(instant_of_ms(start), p, r, f) for start, p, r, f in rows]

    async def close(self) -> None:
        """Close the connection and its thread."""
        with self._thread_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            await thread.close()

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
        now = self._clock.now_ms()
        if parsed in PARKED_STATE:
            where, values = "state = ?", [PARKED_STATE[parsed]]
        else:
            comparison = ">" if parsed is Channel.DELAYED else "<="
            where, values = f"state = {PENDING} AND due_ms {comparison} ?", [now]
        order = "priority DESC, due_ms, rowid" if parsed is Channel.WAITING else "due_ms, rowid"
        sql = (
            f"SELECT state, due_ms, {_READ_COLUMNS} FROM corequeue_jobs "
            f"WHERE queue = ? AND {where} AND (? IS NULL OR type = ?) "
            f"ORDER BY {order} LIMIT ? OFFSET ?"
        )
        parameters = (self.name, *values, job_type, job_type, limit, offset)
        rows = await self._run(lambda db: db.execute(sql, parameters).fetchall())
        return [_view(row, now) for row in rows]

    async def get_job(self, job_id: str) -> JobView | None:
        """Return the job with id `job_id` wherever it is, or None."""
        now = self._clock.now_ms()
        sql = (
            f"SELECT state, due_ms, {_READ_COLUMNS} FROM corequeue_jobs WHERE queue = ? AND id = ?"
        )
        row = await self._run(lambda db: db.execute(sql, (self.name, job_id)).fetchone())
        return None if row is None else _view(row, now)

    async def delete_job(self, job_id: str) -> bool:
        """Delete a waiting, delayed, failed or timeout job; return whether there was one."""
        sql = (
            f"DELETE FROM corequeue_jobs WHERE queue = ? AND id = ? "
            f"AND state IN ({PENDING}, {FAILED}, {TIMEOUT}, {COMPLETED})"
        )
        return await self._write(sql, (self.name, job_id)) > 0

    async def retry_job(self, job_id: str) -> bool:
        """Move one failed or timeout job back to `waiting`; return whether it was there."""
        sql = (
            f"UPDATE corequeue_jobs SET state = {PENDING}, due_ms = ? "
            f"WHERE queue = ? AND id = ? AND state IN ({FAILED}, {TIMEOUT})"
        )
        moved = await self._write(sql, (self._clock.now_ms(), self.name, job_id)) > 0
        self._pushed.ring()
        return moved

    async def group_counts(self) -> dict[str, GroupCounts]:
        """Return the waiting and reserved jobs of every group that has some."""
        sql = (
            f"SELECT job_group, state, COUNT(*) FROM corequeue_jobs WHERE queue = ? "
            f"AND job_group IS NOT NULL "
            f"AND (state = {RESERVED} OR (state = {PENDING} AND due_ms <= ?)) GROUP BY 1, 2"
        )
        parameters = (self.name, self._clock.now_ms())
        rows = await self._run(lambda db: db.execute(sql, parameters).fetchall())
        return counts_by_group(rows)

    # --- inside the driver's thread --------------------------------------------------------

    def _reserve(
        self,
        db: sqlite3.Connection,
        *,
        now: int,
        now_us: int,
        until: int,
        limit: int,
        token: str,
    ) -> tuple[list[PersistedJob], int | None]:
        limits = self._limits

        def reserve() -> tuple[list[PersistedJob], int | None]:
            db.execute(_RECOVER, (LEASE_EXPIRED, now, self.name, now))
            if limits.is_empty or _is_paused(db, self.name):
                rows = db.execute(_POP, (until, token, self.name, now, self.name, limit)).fetchall()
            else:
                chosen = choose(
                    db, queue=self.name, limits=limits, now=now, now_us=now_us, limit=limit
                )
                self._held_back.update(chosen.held)
                if not chosen.rowids:
                    return [], chosen.next_event_ms
                rows = db.execute(
                    _POP_CHOSEN.format(rowids=",".join(map(str, chosen.rowids))), (until, token)
                ).fetchall()
            if rows:
                # RETURNING has no order: the pop's (priority, then FIFO by rowid)
                rows.sort(key=lambda row: (-_whole(row[PRIORITY_COLUMN]), row[-1]))
                jobs = _readable(db, rows, now)
                for job in jobs:
                    job.token = token
                return jobs, None if jobs else now  # only unreadable rows: look again at once
            paused = db.execute(_IS_PAUSED, (self.name,)).fetchone()
            next_event = _NEXT_LEASE_END if paused and paused[0] else _NEXT_EVENT
            return [], db.execute(next_event, (self.name,)).fetchone()[0]

        return _in_transaction(db, reserve)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            _in_transaction(db, lambda: _migrate(db))
        except BaseException:
            db.close()  # here, on its own thread, not wherever the traceback is dropped
            raise
        return db

    # --- plumbing --------------------------------------------------------------------------

    def _push_rows(
        self, jobs: Sequence[tuple[PersistedJob, timedelta]], options: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Return the `_PUSH` parameters of `jobs`; refuse any option."""
        if options:
            names = ", ".join(sorted(options))
            raise InvalidOption(f"{type(self).__name__} takes no push options: {names}")
        now_us = self._clock.now_us()
        # Built here, in full, before the driver's thread sees it.
        return [(self.name, due_ms(now_us, delay), *_row(job)) for job, delay in jobs]

    def _ack_statement(self, job: PersistedJob, now_us: int) -> tuple[str, tuple[Any, ...]]:
        """Return the statement that acks `job`: a delete, or a move to `completed`."""
        keep = job.keep_result
        if keep is None or keep <= timedelta(0):
            return _ACK, self._held(job)
        values = (due_ms(now_us, keep), to_ms(keep), job.result)
        return _COMPLETE, (*values, *self._held(job))

    def _held(self, job: PersistedJob) -> tuple[str, str, str | None]:
        """Return the parameters of `_HELD` for `job`: the row it holds under its token."""
        return (self.name, job.id, job.token)

    async def _settle(self, job: PersistedJob, state: int, due: int) -> bool:
        if job.token is None:
            return False
        values = (state, due, to_ms(job.backoff), job.attempts, job.last_error)
        moved = await self._write(_SETTLE, (*values, *self._held(job))) > 0
        self._freed()
        return moved

    def _freed(self) -> None:
        """A reservation ended: wake this driver's pops held back by a concurrency limit.

        Pops of other processes sharing the file see it at their next poll.
        """
        if self._limits.limits_concurrency:
            self._pushed.ring()

    async def _write(self, sql: str, parameters: Sequence[Any]) -> int:
        return await self._run(partial(_execute, sql=sql, parameters=parameters))

    async def _each(
        self, jobs: Sequence[PersistedJob], sql: str, rows: list[tuple[Any, ...]]
    ) -> list[PersistedJob]:
        """Run `sql` once per job in one transaction; return the jobs it changed no row for."""
        if not rows:
            return []
        changed = await self._run(partial(_execute_each, sql=sql, rows=rows))
        return [job for job, done in zip(jobs, changed, strict=True) if not done]

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` with the connection on the driver's thread and return its result.

        `work` must return plain values, never a cursor: a cursor freed on another thread
        resets its statement there, racing the driver's thread (SQLite's "API misuse").
        """
        thread = self._connection_thread()
        with self._store_errors():
            return await thread.run(work)

    def _connection_thread(self) -> _ConnectionThread:
        """Return the thread that owns the connection, starting it on first use."""
        with self._thread_lock:
            # Pops on a consumer's loop and pushes from dispatch_sync's threads may come at
            # once: the lock makes them share one thread, the only one using the connection.
            if self._thread is None:
                self._thread = _ConnectionThread(self._connect, f"corequeue-sqlite-{self.name}")
            return self._thread

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """Re-raise sqlite3 errors as StoreUnavailable naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(self.path), str(exc)) from exc


class _ConnectionThread:
    """One thread and the connection that only it touches: sqlite3 objects stay on it."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str) -> None:
        self._connect = connect
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the thread, connecting first if need be."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, work)

    def run_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the thread and wait for it, from a thread with no event loop."""
        return self._executor.submit(self._call, work).result()

    async def close(self) -> None:
        """Close the connection on the thread, then end the thread."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        self._executor.shutdown(wait=True)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:  # work sent just before close(): never reopen behind close()
            raise sqlite3.ProgrammingError("the driver was closed")
        if self._connection is None:
            self._connection = self._connect()
        return work(self._connection)

    def _disconnect(self) -> None:
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _execute(db: sqlite3.Connection, *, sql: str, parameters: Sequence[Any]) -> int:
    """Run one statement (its own transaction); return how many rows it changed."""
    return db.execute(sql, parameters).rowcount


def _execute_many(db: sqlite3.Connection, *, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run `sql` for every row in one transaction."""
    if rows:
        _in_transaction(db, lambda: db.executemany(sql, rows).close())


def _execute_each(db: sqlite3.Connection, *, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
    """Run `sql` for every row in one transaction; return whether each changed a row."""
    return _in_transaction(db, lambda: [db.execute(sql, row).rowcount > 0 for row in rows])


def _execute_statements(
    db: sqlite3.Connection, *, statements: Sequence[tuple[str, Sequence[Any]]]
) -> list[bool]:
    """Run every `(sql, parameters)` in one transaction; return whether each changed a row."""
    return _in_transaction(
        db, lambda: [db.execute(*statement).rowcount > 0 for statement in statements]
    )


def _renew_each(db: sqlite3.Connection, *, rows: Sequence[Sequence[Any]]) -> list[int | None]:
    """Run `_RENEW` for every row in one transaction; per row, whether a cancel request names
    the reservation (1 or 0), or None when the lease is lost."""

    def renew() -> list[int | None]:
        answers: list[int | None] = []
        for row in rows:
            found = db.execute(_RENEW, row).fetchone()
            answers.append(None if found is None else int(found[0]))
        return answers

    return _in_transaction(db, renew)


def _cancel(db: sqlite3.Connection, *, name: str, job_id: str) -> bool:
    """Delete a pending job, or mark a reserved one's reservation as cancelled: one step."""

    def cancel() -> bool:
        sql = f"DELETE FROM corequeue_jobs WHERE queue = ? AND id = ? AND state = {PENDING}"
        if db.execute(sql, (name, job_id)).rowcount > 0:
            return True
        return db.execute(_REQUEST_CANCEL, (name, job_id)).rowcount > 0

    return _in_transaction(db, cancel)


def _progress_values(job: PersistedJob) -> tuple[float | None, str | None]:
    if job.progress is None:
        return None, None
    return job.progress.fraction, job.progress.message


def _advance_and_push(db: sqlite3.Connection, *, slot: Sequence[Any], push: Sequence[Any]) -> bool:
    """Advance a schedule's last slot and, when it moved, push the slot's job: one transaction."""

    def step() -> bool:
        if db.execute(_ADVANCE_SLOT, slot).rowcount == 0:
            return False
        db.execute(_PUSH, push)
        return True

    return _in_transaction(db, step)


def _in_transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    """Run `work` in one write transaction, taking the write lock up front."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _migrate(db: sqlite3.Connection) -> None:
    """Create the tables of a new file, or bring an older file's up to SCHEMA_VERSION."""
    db.execute(_META)
    found = db.execute("SELECT value FROM corequeue_meta WHERE key = 'schema_version'").fetchone()
    version = SCHEMA_VERSION if found is None else int(found[0])
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            "sqlite", f"schema version {version} is newer than this release ({SCHEMA_VERSION})"
        )
    # executescript() would commit the open transaction: run the statements one by one.
    tables = (_PERIODIC_TABLE, _QUEUES_TABLE, RATES_TABLE, _WORKERS_TABLE, _THROUGHPUT_TABLE)
    for statement in (*_SCHEMA.split(";"), *tables):
        if statement.strip():
            db.execute(statement)
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for statement in _UPGRADES[step]:
            db.execute(statement)
    db.execute(_PRIORITY_INDEX)  # after the upgrade steps: it needs the priority column
    db.execute(
        "INSERT INTO corequeue_meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )


def _row(job: PersistedJob) -> tuple[Any, ...]:
    return (
        job.id,
        job.type,
        job.value,
        to_ms(job.handle_timeout),
        to_ms(job.backoff),
        job.attempts,
        job.max_attempts,
        job.last_error,
        headers_column(job.headers),
        job.priority,
        job.group,
        None if job.keep_result is None else to_ms(job.keep_result),
        job.result,
    )


def _readable(db: sqlite3.Connection, rows: list[Any], now: int) -> list[PersistedJob]:
    """Return the jobs of reserved rows; park the rows that cannot be read in `failed`."""
    jobs = []
    for row in rows:
        try:
            jobs.append(job_from_columns(row[:JOB_COLUMN_COUNT]))
        except DecodeError as exc:
            db.execute(_PARK_UNREADABLE, (now, f"DecodeError: {exc}", row[-1]))
    return jobs


def _view(row: Sequence[Any], now: int) -> JobView:
    """Return the JobView of a row `state, due_ms, <_COLUMNS>`."""
    state, due_ms = row[0], row[1]
    if state == PENDING:
        channel = Channel.DELAYED if due_ms > now else Channel.WAITING
    else:
        channel = next(c for c, s in PARKED_STATE.items() if s == state)
    shows_due = channel in (Channel.DELAYED, Channel.RESERVED, Channel.COMPLETED)
    return JobView(readable_or_not(row[2:]), channel, instant_of_ms(due_ms) if shows_due else None)


def _whole(value: Any) -> int:
    """Return an int column as it is, and anything else (a row edited by hand) as 0."""
    return value if isinstance(value, int) else 0


def _is_paused(db: sqlite3.Connection, queue: str) -> bool:
    row = db.execute(_IS_PAUSED, (queue,)).fetchone()
    return bool(row and row[0])
