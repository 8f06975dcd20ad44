"""Write bad data straight into a driver's store, behind the driver's back, for bad-input tests.

SQL drivers keep a job as columns: tests can overwrite the payload or any column. Redis keeps one
envelope per job (a field of the queue's `jobs` hash): tests can overwrite the payload inside
it, or the whole envelope.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from typing import Any, Protocol

import psycopg
import pytest
from psycopg import sql

from corequeue.drivers.base import Channel, Driver
from corequeue.drivers.in_process import InProcessDriver
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.redis import RedisDriver
from corequeue.drivers.redis.connection import redact
from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.job import PersistedJob
from tests.support.driver_redis import raw_client
from tests.support.servers import (
    POSTGRES_DSN_VAR,
    REDIS_CLUSTER_URL_VAR,
    REDIS_URL_VAR,
    server_url,
)


class Tamper(Protocol):
    """Changes what the store holds for one job that is waiting or delayed."""

    async def set_payload(self, job_id: str, raw: bytes) -> None:
        """Replace the job's encoded payload with `raw`."""
        ...

    async def set_envelope(self, job_id: str, raw: bytes) -> None:
        """Replace the whole stored envelope (stores that keep one); skip the test otherwise."""
        ...

    async def set_column(self, job_id: str, column: str, value: Any) -> None:
        """Set one column of the job's row (SQL stores); skip the test otherwise."""
        ...

    async def parked(self, channel: Channel) -> dict[str, bytes]:
        """Return what the store holds for each job of `failed` or `timeout` (Redis only)."""
        ...

    async def last_error(self, job_id: str) -> tuple[str, str | None]:
        """Return the state number and `last_error` column of the job's row (SQL stores)."""
        ...


def tamper_with(driver: Driver) -> Tamper:
    """Return the tamperer for `driver`'s kind of store."""
    if isinstance(driver, SQLiteDriver):
        return _SQLite(driver)
    if isinstance(driver, PostgresDriver):
        return _Postgres(driver)
    if isinstance(driver, RedisDriver):
        return _Redis(driver)
    assert isinstance(driver, InProcessDriver)
    return _InProcess(driver)


class _NoEnvelope:
    async def set_envelope(self, job_id: str, raw: bytes) -> None:
        pytest.skip("this store keeps a job as columns, not as one envelope")

    async def parked(self, channel: Channel) -> dict[str, bytes]:
        pytest.skip("only Redis keeps undecodable envelopes as they are")

    async def last_error(self, job_id: str) -> tuple[str, str | None]:
        pytest.skip("only SQL stores have a last_error column")


class _SQLite(_NoEnvelope):
    def __init__(self, driver: SQLiteDriver) -> None:
        self._driver = driver

    async def set_payload(self, job_id: str, raw: bytes) -> None:
        await self.set_column(job_id, "value", raw)

    async def set_column(self, job_id: str, column: str, value: Any) -> None:
        assert column.isidentifier()
        with sqlite3.connect(self._driver.path, isolation_level=None) as db:
            changed = db.execute(
                f"UPDATE corequeue_jobs SET {column} = ? WHERE queue = ? AND id = ?",
                (value, self._driver.name, job_id),
            ).rowcount
        db.close()
        assert changed == 1

    async def last_error(self, job_id: str) -> tuple[str, str | None]:
        with sqlite3.connect(self._driver.path, isolation_level=None) as db:
            state, error = db.execute(
                "SELECT state, last_error FROM corequeue_jobs WHERE queue = ? AND id = ?",
                (self._driver.name, job_id),
            ).fetchone()
        db.close()
        return _STATES[state], error


class _Postgres(_NoEnvelope):
    def __init__(self, driver: PostgresDriver) -> None:
        self._driver = driver

    async def set_payload(self, job_id: str, raw: bytes) -> None:
        await self.set_column(job_id, "value", raw)

    async def set_column(self, job_id: str, column: str, value: Any) -> None:
        dsn = server_url(POSTGRES_DSN_VAR)
        query = sql.SQL("UPDATE {} SET {} = %s WHERE queue = %s AND id = %s").format(
            sql.Identifier(self._driver.schema, "jobs"), sql.Identifier(column)
        )
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
            cursor = await connection.execute(query, (value, self._driver.name, job_id))
            assert cursor.rowcount == 1

    async def last_error(self, job_id: str) -> tuple[str, str | None]:
        dsn = server_url(POSTGRES_DSN_VAR)
        query = sql.SQL("SELECT state, last_error FROM {} WHERE queue = %s AND id = %s").format(
            sql.Identifier(self._driver.schema, "jobs")
        )
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
            cursor = await connection.execute(query, (self._driver.name, job_id))
            row = await cursor.fetchone()
        assert row is not None
        return _STATES[row[0]], row[1]


_STATES = {0: "pending", 1: "reserved", 2: "failed", 3: "timeout"}
"""Channel of each `state` value of the SQL drivers' rows."""


class _Redis:
    def __init__(self, driver: RedisDriver) -> None:
        self._driver = driver
        cluster_url = os.environ.get(REDIS_CLUSTER_URL_VAR, "")
        self._cluster = bool(cluster_url) and driver.url == redact(cluster_url)
        self._url = cluster_url if self._cluster else server_url(REDIS_URL_VAR)

    async def set_payload(self, job_id: str, raw: bytes) -> None:
        jobs = self._driver.keys.jobs
        async with raw_client(self._url, cluster=self._cluster) as client:
            stored = await client.hget(jobs, job_id)
            assert isinstance(stored, bytes)
            job = PersistedJob.from_bytes(stored)
            await client.hset(jobs, job_id, replace(job, value=raw).to_bytes())

    async def set_envelope(self, job_id: str, raw: bytes) -> None:
        jobs = self._driver.keys.jobs
        async with raw_client(self._url, cluster=self._cluster) as client:
            assert await client.hexists(jobs, job_id)
            await client.hset(jobs, job_id, raw)

    async def set_column(self, job_id: str, column: str, value: Any) -> None:
        pytest.skip("Redis keeps a job as one envelope, not as columns")

    async def last_error(self, job_id: str) -> tuple[str, str | None]:
        pytest.skip("Redis keeps a job as one envelope, not as columns")

    async def parked(self, channel: Channel) -> dict[str, bytes]:
        keys = self._driver.keys
        async with raw_client(self._url, cluster=self._cluster) as client:
            parked = {}
            for member in await client.zrange(getattr(keys, channel.value), 0, -1):
                job_id = member.decode() if isinstance(member, bytes) else str(member)
                stored = await client.hget(keys.jobs, job_id)
                assert isinstance(stored, bytes)
                parked[job_id] = stored
            return parked


class _InProcess(_NoEnvelope):
    """The in-process store is the driver's memory: set the payload of the job it holds."""

    def __init__(self, driver: InProcessDriver) -> None:
        self._driver = driver

    async def set_payload(self, job_id: str, raw: bytes) -> None:
        entry = self._driver._pending[job_id]
        self._driver._pending[job_id] = entry._replace(job=replace(entry.job, value=raw))

    async def set_column(self, job_id: str, column: str, value: Any) -> None:
        pytest.skip("the in-process store holds objects, not columns")
