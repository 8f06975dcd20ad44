"""Connection pools of the PostgreSQL driver: the synchronous pool of `push_sync`, and the
error a caller gets when no pooled connection came in time.

Both pools (psycopg_pool's AsyncConnectionPool per event loop, ConnectionPool for sync code)
make a caller wait for a free connection up to `pool_timeout` rather than fail at once at
`pool_max_size`; past it, the caller gets a StoreUnavailable that names both settings.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from corequeue.errors import StoreUnavailable

T = TypeVar("T")

SyncPoolFactory = Callable[[], "ConnectionPool[psycopg.Connection[Any]]"]
"""Builds the (closed) synchronous pool on first use, lending connections unchecked."""


@contextmanager
def pool_waits(
    store: str, stats: Callable[[], Mapping[str, int]], timeout: timedelta
) -> Iterator[None]:
    """Turn the pool's PoolTimeout into a StoreUnavailable naming the pool's limit and timeout.

    Args:
        store: The redacted DSN.
        stats: The pool's `get_stats`, read when the wait failed.
        timeout: How long the caller waited (the driver's `pool_timeout`).
    """
    try:
        yield
    except PoolTimeout as exc:
        raise StoreUnavailable(store, timeout_reason(stats(), timeout)) from exc


def timeout_reason(stats: Mapping[str, int], timeout: timedelta) -> str:
    """Say why no connection came within `timeout`, from psycopg_pool's `get_stats()`."""
    seconds = f"{timeout.total_seconds():g} s"
    size, most = stats.get("pool_size", 0), stats.get("pool_max", 0)
    if size >= most and not stats.get("pool_available", 0):
        return (
            f"no free connection within {seconds}: all {most} connections of the pool are in "
            f"use (PostgresDriver pool_max_size={most}, pool_timeout={seconds})"
        )
    return (
        f"no connection within {seconds} (PostgresDriver pool_timeout): the pool holds {size} "
        f"of at most {most}, none free, and could open no other"
    )


class SyncPool:
    """The synchronous pool `push_sync` uses, opened on first use by any thread.

    It lends connections without checking them first (a check is one more round trip per
    push): `run()` instead runs idempotent work again on another connection when the one it
    got turns out dead (a server restart leaves every idle connection so), and the pool
    replaces the dead one.

    Args:
        build: Builds the pool, not yet open.
        store: The redacted DSN, for errors.
        timeout: How long a caller waits for a connection.
    """

    def __init__(self, build: SyncPoolFactory, store: str, timeout: timedelta) -> None:
        self._build = build
        self._store = store
        self._timeout = timeout
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run idempotent `work` on a pooled connection; again on another if that one was dead.

        At most once more per connection the pool may hold, then the error is raised.
        """
        attempts = 0
        while True:
            lent: psycopg.Connection[Any] | None = None
            try:
                with self.connection() as lent:
                    return work(lent)
            except psycopg.OperationalError:
                attempts += 1
                if lent is None or not lent.broken or attempts > self._most_connections():
                    raise

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Lend a connection of the pool for the block, opening the pool on first use."""
        with self._lock:
            if self._pool is None:
                self._pool = self._build()
                self._pool.open(wait=False)
            pool = self._pool
        with pool_waits(self._store, pool.get_stats, self._timeout), pool.connection() as lent:
            yield lent

    def _most_connections(self) -> int:
        with self._lock:
            return 0 if self._pool is None else self._pool.max_size

    async def close(self) -> None:
        """Close the pool and its worker threads, if it was opened; it reopens on next use."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.close)
