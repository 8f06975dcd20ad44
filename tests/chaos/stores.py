"""The durable stores under chaos: how workers reach them and how the controller restarts them.

Redis and PostgreSQL are the servers of the test run (scripts/test starts them and exports
their addresses); the restart happens on the same port and data folder, so the rest of the
suite finds them as before. The embedded SQLite store has no server: its "restart" is the crash
of the whole machine, every worker process killed at once.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql
from redis.asyncio import Redis

import corequeue as cq
from corequeue.drivers.base import Channel
from corequeue.drivers.postgres import PostgresDriver
from corequeue.drivers.redis import RedisDriver
from tests.support.servers import POSTGRES_DSN_VAR, REDIS_URL_VAR, server_url

CHAOS_SCHEMA = "corequeue_chaos"
RESTART_DEADLINE_SECONDS = 60.0


class Workers(Protocol):
    """What a store restart may do to the worker processes."""

    def kill_all(self) -> None:
        """SIGKILL every live worker (recorded as kills)."""
        ...

    def start_missing(self) -> None:
        """Start workers until the pool is full again."""
        ...


class ChaosStore(Protocol):
    """One durable store under chaos."""

    name: str

    def worker_config(self) -> dict[str, Any]:
        """Return what a worker needs to reach the queue: driver, target, queue, schema."""
        ...

    def driver(self) -> cq.Driver:
        """Return a driver on the queue for the controller (dispatch, info)."""
        ...

    async def restart(self, workers: Workers) -> None:
        """Crash and restart the store; return once it answers again."""
        ...


@dataclass
class SQLiteStore:
    """The embedded store: one file shared by the worker processes."""

    path: Path
    queue: str
    name: str = "sqlite"

    def worker_config(self) -> dict[str, Any]:
        return {"driver": "sqlite", "target": str(self.path), "queue": self.queue, "schema": ""}

    def driver(self) -> cq.Driver:
        return cq.SQLiteDriver(self.path, self.queue)

    async def restart(self, workers: Workers) -> None:
        # No server to restart: the machine "crashes", taking every process using the file.
        workers.kill_all()
        workers.start_missing()


@dataclass
class RedisStore:
    """The test run's standalone redis-server, switched to `appendfsync always` for the run."""

    url: str
    port: str
    folder: Path
    queue: str
    name: str = "redis"

    def worker_config(self) -> dict[str, Any]:
        return {"driver": "redis", "target": self.url, "queue": self.queue, "schema": ""}

    def driver(self) -> cq.Driver:
        return RedisDriver.from_url(self.url, self.queue)

    async def restart(self, workers: Workers) -> None:
        # SIGKILL, not SHUTDOWN: nothing gets flushed on the way down. With appendfsync always,
        # every write Redis acknowledged is on disk already.
        pid = int((self.folder / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        await _wait_for_exit(pid)
        (self.folder / "redis.pid").unlink(missing_ok=True)
        await _run(
            *("redis-server", "--port", self.port, "--bind", "127.0.0.1"),
            *("--dir", str(self.folder), "--daemonize", "yes"),
            *("--pidfile", str(self.folder / "redis.pid")),
            *("--logfile", str(self.folder / "redis.log"), "--save", ""),
            *("--appendonly", "yes", "--appendfsync", "always"),
        )
        await _until_answers(self._ping)

    async def set_appendfsync(self, policy: str) -> None:
        """Set the server's fsync policy for its append-only file."""
        async with Redis.from_url(self.url) as client:
            await client.config_set("appendfsync", policy)

    async def _ping(self) -> bool:
        async with Redis.from_url(self.url) as client:
            return bool(await client.ping())


@dataclass
class PostgresStore:
    """The test run's PostgreSQL server, restarted with `pg_ctl restart -m immediate`."""

    dsn: str
    data: Path
    bin_folder: Path
    queue: str
    name: str = "postgres"

    def worker_config(self) -> dict[str, Any]:
        return {"driver": "postgres", "target": self.dsn, "queue": self.queue,
                "schema": CHAOS_SCHEMA}  # fmt: skip

    def driver(self) -> cq.Driver:
        return PostgresDriver(self.dsn, self.queue, CHAOS_SCHEMA)

    async def restart(self, workers: Workers) -> None:
        # "immediate" stops without a checkpoint, as a crash would; the start replays the WAL.
        command = [str(self.bin_folder / "pg_ctl"), "-D", str(self.data)]
        command += ["-l", str(self.data.parent / "postgres.log"), "-w", "-m", "immediate"]
        command.append("restart")
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
        await _run(*command)
        await _until_answers(self._ping)

    async def delete_queue(self) -> None:
        """Delete the rows of this run's queue."""
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as db:
            table = sql.Identifier(CHAOS_SCHEMA, "jobs")
            await db.execute(
                sql.SQL("DELETE FROM {} WHERE queue = %s").format(table), (self.queue,)
            )

    async def _ping(self) -> bool:
        async with await psycopg.AsyncConnection.connect(self.dsn, connect_timeout=2) as db:
            await db.execute("SELECT 1")
        return True


@asynccontextmanager
async def chaos_store(kind: str, tmp_path: Path) -> AsyncIterator[ChaosStore]:
    """Yield the store `kind` with a fresh queue; leave the server as the suite expects it."""
    queue = f"chaos-{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        yield SQLiteStore(tmp_path / "chaos.db", queue)
        return
    if kind == "redis":
        url = server_url(REDIS_URL_VAR)
        folder = Path(os.environ["COREQUEUE_TEST_REDIS_DIR"])
        redis_store = RedisStore(url, os.environ["COREQUEUE_TEST_REDIS_PORT"], folder, queue)
        await redis_store.set_appendfsync("always")
        try:
            yield redis_store
        finally:
            await _flush(redis_store.driver())
            await redis_store.set_appendfsync("everysec")  # as scripts/servers.sh starts it
        return
    dsn = server_url(POSTGRES_DSN_VAR)
    postgres_store = PostgresStore(
        dsn,
        Path(os.environ["COREQUEUE_TEST_POSTGRES_DATA"]),
        Path(os.environ["COREQUEUE_TEST_POSTGRES_BIN"]),
        queue,
    )
    try:
        yield postgres_store
    finally:
        await postgres_store.delete_queue()


async def _flush(driver: cq.Driver) -> None:
    for channel in Channel:
        await driver.flush(channel)
    await driver.close()


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"{command[0]} failed: {errors.decode(errors='replace')}")


async def _wait_for_exit(pid: int) -> None:
    async with asyncio.timeout(RESTART_DEADLINE_SECONDS):
        while _is_alive(pid):
            await asyncio.sleep(0.01)


def _is_alive(pid: int) -> bool:
    # A daemon killed outside our process tree may linger as a zombie if nothing reaps it.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def _until_answers(ping: Any) -> None:
    async with asyncio.timeout(RESTART_DEADLINE_SECONDS):
        while True:
            try:
                if await ping():
                    return
            except Exception:  # still starting: connection refused, "the database is starting"
                pass
            await asyncio.sleep(0.02)
