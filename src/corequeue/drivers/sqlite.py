"""SQLiteDriver: the embedded, durable default. One file, WAL mode, one transaction per move.

All queues of a file share one table. A row's `state` says where the job is; `due_ms` is when a
pending job may run (so `waiting` and `delayed` are one state split by the clock, and a job
becomes waiting at its due time with nothing to promote) or when a reserved job's lease runs
out. Several processes may share the file: SQLite's write lock (`BEGIN IMMEDIATE`) hands each job
to exactly one of them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from corequeue.drivers.base import (
    DEFAULT_LEASE,
    DEFAULT_POP_TIMEOUT,
    LEASE_EXPIRED,
    Channel,
    Clock,
    JobView,
    QueueInfo,
    SystemClock,
    check_listing,
    instant_of_ms,
    parse_channel,
    reloadable,
)
from corequeue.drivers.sql_state import (
    FAILED,
    PARKED_STATE,
    PENDING,
    RESERVED,
    TIMEOUT,
    job_from_columns,
    readable_or_not,
)
from corequeue.drivers.wakeup import Wakeup
from corequeue.errors import DecodeError, InvalidOption, QueueEmpty, StoreUnavailable
from corequeue.job import PersistedJob, to_ms

T = TypeVar("T")

SCHEMA_VERSION: Final = 1

_PARKED_STATE = PARKED_STATE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS corequeue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
    UNIQUE (queue, id)
);
CREATE INDEX IF NOT EXISTS corequeue_jobs_due ON corequeue_jobs (queue, state, due_ms);
"""

_COLUMNS = "id, type, value, handle_timeout_ms, backoff_ms, attempts, max_attempts, last_error"

_PUSH = f"""
INSERT INTO corequeue_jobs (queue, state, due_ms, {_COLUMNS})
VALUES (?, {PENDING}, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (queue, id) DO UPDATE SET
    state = {PENDING}, due_ms = excluded.due_ms, type = excluded.type, value = excluded.value,
    handle_timeout_ms = excluded.handle_timeout_ms, backoff_ms = excluded.backoff_ms,
    attempts = excluded.attempts, max_attempts = excluded.max_attempts,
    last_error = excluded.last_error
WHERE corequeue_jobs.state >= {FAILED}
"""

# rowid breaks ties between equal due times: it grows with every insert, so waiting is FIFO.
_POP = f"""
UPDATE corequeue_jobs SET state = {RESERVED}, due_ms = ?
WHERE rowid IN (
    SELECT rowid FROM corequeue_jobs
    WHERE queue = ? AND state = {PENDING} AND due_ms <= ?
    ORDER BY due_ms, rowid LIMIT ?
)
RETURNING {_COLUMNS}, rowid
"""

_RECOVER = f"""
UPDATE corequeue_jobs SET
    state = CASE WHEN attempts < max_attempts THEN {PENDING} ELSE {TIMEOUT} END,
    attempts = attempts + (attempts < max_attempts),
    last_error = ?, due_ms = ?
WHERE queue = ? AND state = {RESERVED} AND due_ms <= ?
"""

_NEXT_EVENT = f"""
SELECT MIN(due_ms) FROM corequeue_jobs WHERE queue = ? AND state IN ({PENDING}, {RESERVED})
"""

_SETTLE = f"""
UPDATE corequeue_jobs SET state = ?, due_ms = ?, backoff_ms = ?, attempts = ?, last_error = ?
WHERE queue = ? AND id = ? AND state = {RESERVED}
"""

_ACK = f"DELETE FROM corequeue_jobs WHERE queue = ? AND id = ? AND state = {RESERVED}"

_RENEW = f"UPDATE corequeue_jobs SET due_ms = ? WHERE queue = ? AND id = ? AND state = {RESERVED}"

# A row written behind the driver's back that is no job (see job_from_columns): parked, not lost.
_PARK_UNREADABLE = f"""
UPDATE corequeue_jobs SET state = {FAILED}, due_ms = ?, last_error = ? WHERE rowid = ?
"""

_INFO = """
SELECT state, due_ms > ?, COUNT(*) FROM corequeue_jobs WHERE queue = ? GROUP BY 1, 2
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
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._pushed = Wakeup()

    def __repr__(self) -> str:
        return f"SQLiteDriver({str(self.path)!r}, name={self.name!r})"

    async def push(self, job: PersistedJob, delay: timedelta) -> None:
        """Put `job` in `waiting`, or in `delayed` until `delay` has passed."""
        await self.push_many([(job, delay)])

    async def push_many(self, jobs: Sequence[tuple[PersistedJob, timedelta]]) -> None:
        """Push every `(job, delay)` pair in one transaction."""
        now = self._clock.now_ms()
        rows = [(self.name, now + to_ms(delay), *_row(job)) for job, delay in jobs]
        await self._run(lambda db: _in_transaction(db, lambda: db.executemany(_PUSH, rows)))
        self._pushed.notify()

    async def pop(self) -> PersistedJob:
        """Reserve the next due job; raise QueueEmpty after `pop_timeout`."""
        jobs = await self.pop_many(1)
        return jobs[0]

    async def pop_many(self, limit: int) -> list[PersistedJob]:
        """Reserve up to `limit` due jobs (at least one); raise QueueEmpty after `pop_timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pop_timeout.total_seconds()
        poll_seconds = self.poll_interval.total_seconds()
        while True:
            now = self._clock.now_ms()
            jobs, next_event_ms = await self._run(partial(self._reserve, now=now, limit=limit))
            if jobs:
                return jobs
            wait = deadline - loop.time()
            if wait <= 0:
                raise QueueEmpty()
            if next_event_ms is not None:
                wait = min(wait, max(next_event_ms - now, 0) / 1000)
            await self._pushed.wait(min(wait, poll_seconds))

    async def ack(self, job: PersistedJob) -> None:
        """Remove a reserved job."""
        await self._write(_ACK, (self.name, job.id))

    async def ack_many(self, jobs: Sequence[PersistedJob]) -> None:
        """Remove several reserved jobs in one transaction (one sync to disk)."""
        await self._write_many(_ACK, [(self.name, job.id) for job in jobs])

    async def fail(self, job: PersistedJob) -> None:
        """Move a reserved job to `failed`."""
        await self._settle(job, FAILED, self._clock.now_ms())

    async def retry(self, job: PersistedJob) -> None:
        """Move a reserved job to `delayed` for its backoff."""
        await self._settle(job, PENDING, self._clock.now_ms() + to_ms(job.backoff))
        self._pushed.notify()

    async def renew(self, job: PersistedJob) -> None:
        """Extend the lease of a reserved job by `lease` from now."""
        await self.renew_many([job])

    async def renew_many(self, jobs: Sequence[PersistedJob]) -> None:
        """Extend the leases of several reserved jobs by `lease` from now, in one transaction."""
        until = self._clock.now_ms() + to_ms(self.lease)
        await self._write_many(_RENEW, [(until, self.name, job.id) for job in jobs])

    async def release(self, job: PersistedJob) -> None:
        """Put a reserved job back in `waiting` without counting an attempt."""
        sql = (
            f"UPDATE corequeue_jobs SET state = {PENDING}, due_ms = ? "
            f"WHERE queue = ? AND id = ? AND state = {RESERVED}"
        )
        await self._write(sql, (self._clock.now_ms(), self.name, job.id))
        self._pushed.notify()

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job."""
        sql = f"DELETE FROM corequeue_jobs WHERE queue = ? AND id = ? AND state = {PENDING}"
        return await self._write(sql, (self.name, job_id)) > 0

    async def reload(self, channel: Channel | str) -> int:
        """Move every job of `failed` or `timeout` back to `waiting`."""
        state = _PARKED_STATE[reloadable(channel)]
        sql = (
            f"UPDATE corequeue_jobs SET state = {PENDING}, due_ms = ? WHERE queue = ? AND state = ?"
        )
        moved = await self._write(sql, (self._clock.now_ms(), self.name, state))
        self._pushed.notify()
        return moved

    async def flush(self, channel: Channel | str) -> None:
        """Delete every job of `channel`."""
        parsed = parse_channel(channel)
        if parsed in _PARKED_STATE:
            sql = "DELETE FROM corequeue_jobs WHERE queue = ? AND state = ?"
            await self._write(sql, (self.name, _PARKED_STATE[parsed]))
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
                channel = next(c for c, s in _PARKED_STATE.items() if s == state)
                counts[channel] += count
        return QueueInfo(**{channel.value: count for channel, count in counts.items()})

    async def close(self) -> None:
        """Close the connection and its thread."""
        if self._executor is None:
            return
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, connection.close)
        self._executor.shutdown(wait=True)
        self._executor = None
        self._connection = None

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
        if parsed in _PARKED_STATE:
            where, values = "state = ?", [_PARKED_STATE[parsed]]
        else:
            comparison = ">" if parsed is Channel.DELAYED else "<="
            where, values = f"state = {PENDING} AND due_ms {comparison} ?", [now]
        sql = (
            f"SELECT state, due_ms, {_COLUMNS} FROM corequeue_jobs "
            f"WHERE queue = ? AND {where} AND (? IS NULL OR type = ?) "
            f"ORDER BY due_ms, rowid LIMIT ? OFFSET ?"
        )
        parameters = (self.name, *values, job_type, job_type, limit, offset)
        rows = await self._run(lambda db: db.execute(sql, parameters).fetchall())
        return [_view(row, now) for row in rows]

    async def get_job(self, job_id: str) -> JobView | None:
        """Return the job with id `job_id` wherever it is, or None."""
        now = self._clock.now_ms()
        sql = f"SELECT state, due_ms, {_COLUMNS} FROM corequeue_jobs WHERE queue = ? AND id = ?"
        row = await self._run(lambda db: db.execute(sql, (self.name, job_id)).fetchone())
        return None if row is None else _view(row, now)

    async def delete_job(self, job_id: str) -> bool:
        """Delete a waiting, delayed, failed or timeout job; return whether there was one."""
        sql = (
            f"DELETE FROM corequeue_jobs WHERE queue = ? AND id = ? "
            f"AND state IN ({PENDING}, {FAILED}, {TIMEOUT})"
        )
        return await self._write(sql, (self.name, job_id)) > 0

    async def retry_job(self, job_id: str) -> bool:
        """Move one failed or timeout job back to `waiting`; return whether it was there."""
        sql = (
            f"UPDATE corequeue_jobs SET state = {PENDING}, due_ms = ? "
            f"WHERE queue = ? AND id = ? AND state IN ({FAILED}, {TIMEOUT})"
        )
        moved = await self._write(sql, (self._clock.now_ms(), self.name, job_id)) > 0
        self._pushed.notify()
        return moved

    # --- inside the driver's thread --------------------------------------------------------

    def _reserve(
        self, db: sqlite3.Connection, *, now: int, limit: int
    ) -> tuple[list[PersistedJob], int | None]:
        def reserve() -> tuple[list[PersistedJob], int | None]:
            db.execute(_RECOVER, (LEASE_EXPIRED, now, self.name, now))
            rows = db.execute(_POP, (now + to_ms(self.lease), self.name, now, limit)).fetchall()
            if rows:
                rows.sort(
                    key=lambda row: row[-1]
                )  # RETURNING order is not guaranteed: FIFO by rowid
                jobs = _readable(db, rows, now)
                return jobs, None if jobs else now  # only unreadable rows: look again at once
            return [], db.execute(_NEXT_EVENT, (self.name,)).fetchone()[0]

        return _in_transaction(db, reserve)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        _in_transaction(db, lambda: _migrate(db))
        return db

    # --- plumbing --------------------------------------------------------------------------

    async def _settle(self, job: PersistedJob, state: int, due_ms: int) -> None:
        values = (state, due_ms, to_ms(job.backoff), job.attempts, job.last_error)
        await self._write(_SETTLE, (*values, self.name, job.id))

    async def _write(self, sql: str, parameters: Sequence[Any]) -> int:
        return await self._run(lambda db: db.execute(sql, parameters).rowcount)

    async def _write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._run(lambda db: _in_transaction(db, lambda: db.executemany(sql, rows)))

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            # One thread owns the connection: sqlite3 objects are not shared between threads.
            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix=f"corequeue-sqlite-{self.name}"
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, work)
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(self.path), str(exc)) from exc

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            self._connection = self._connect()
        return work(self._connection)


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
    # executescript() would commit the open transaction: run the statements one by one.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    found = db.execute("SELECT value FROM corequeue_meta WHERE key = 'schema_version'").fetchone()
    if found is None:
        db.execute(
            "INSERT INTO corequeue_meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    elif int(found[0]) > SCHEMA_VERSION:
        raise StoreUnavailable(
            "sqlite", f"schema version {found[0]} is newer than this release ({SCHEMA_VERSION})"
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
    )


def _job(row: Sequence[Any]) -> PersistedJob:
    return job_from_columns(row)


def _readable(db: sqlite3.Connection, rows: list[Any], now: int) -> list[PersistedJob]:
    """Return the jobs of reserved rows; park the rows that cannot be read in `failed`."""
    jobs = []
    for row in rows:
        try:
            jobs.append(_job(row))
        except DecodeError as exc:
            db.execute(_PARK_UNREADABLE, (now, f"DecodeError: {exc}", row[-1]))
    return jobs


def _view(row: Sequence[Any], now: int) -> JobView:
    """Return the JobView of a row `state, due_ms, <_COLUMNS>`."""
    state, due_ms = row[0], row[1]
    if state == PENDING:
        channel = Channel.DELAYED if due_ms > now else Channel.WAITING
    else:
        channel = next(c for c, s in _PARKED_STATE.items() if s == state)
    shows_due = channel in (Channel.DELAYED, Channel.RESERVED)
    return JobView(readable_or_not(row[2:]), channel, instant_of_ms(due_ms) if shows_due else None)
