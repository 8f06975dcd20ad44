"""Waking idle pops: a Bell rung on every push, and a LISTEN connection that rings it.

PostgreSQL sends a NOTIFY when a push (or retry, release, reload) commits; the Listener holds
one dedicated connection per event loop that LISTENs for them and reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from corequeue.drivers.wakeup import Bell

Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]
"""Opens a new autocommit connection to the store."""


class Listener:
    """LISTENs on `channel` and rings `bell` for each notification about `queue`.

    Args:
        connect: Opens the dedicated connection.
        channel: The notification channel of the schema.
        queue: The queue name notifications carry as payload.
        bell: Rung on each notification, and after each reconnection (notifications sent
            while the connection was down are lost, so pops must look again).
        max_retry_delay: The longest pause between two reconnection attempts.
    """

    def __init__(
        self,
        connect: Connect,
        channel: str,
        queue: str,
        bell: Bell,
        max_retry_delay: timedelta = timedelta(seconds=2),
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._queue = queue
        self._bell = bell
        self._max_retry_seconds = max_retry_delay.total_seconds()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and LISTEN, then relay notifications in a task until `close()`.

        Raises:
            psycopg.Error: If the first connection fails.
        """
        connection = await self._listen()
        self._task = asyncio.create_task(self._run(connection), name=f"listen {self._channel}")

    async def close(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> psycopg.AsyncConnection[Any]:
        connection = await self._connect()
        try:
            await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _run(self, connection: psycopg.AsyncConnection[Any]) -> None:
        while True:
            await self._relay(connection)
            connection = await self._reconnect()
            self._bell.ring()

    async def _relay(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Ring for each notification until the connection breaks."""
        try:
            async for notification in connection.notifies():
                if notification.payload == self._queue:
                    self._bell.ring()
        except psycopg.Error:
            pass
        finally:
            await connection.close()

    async def _reconnect(self) -> psycopg.AsyncConnection[Any]:
        delay = 0.05
        while True:
            try:
                return await self._listen()
            except psycopg.Error:
                # The store is down: pops keep polling meanwhile; try again a little later.
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_seconds)
