"""Bounded connections of the Redis driver: a caller waits for a free connection, then fails.

redis-py's own pools fail at their limit at once ("Too many connections"; a Cluster node allows
100 by default). The driver's clients instead let a caller wait up to `pool_timeout` for one of
`max_connections` connections and then raise an error that names both settings:

- standalone and Sentinel clients, async and sync: redis-py's BlockingConnectionPool (mixed into
  the Sentinel pool), whose timeout error is given that message;
- Cluster clients: every command of the queue goes through `turn()`, a semaphore of
  `max_connections` turns per client, and each node's own limit is set to the same number.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import redis.cluster
import redis.sentinel
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from corequeue.errors import InvalidOption

DEFAULT_MAX_CONNECTIONS: Final = 50
"""Connections one client of the driver opens at most, unless told otherwise."""

DEFAULT_POOL_TIMEOUT: Final = timedelta(seconds=5)
"""How long a caller waits for a free connection, unless told otherwise."""


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """How many connections one client opens at most, and how long a caller waits for one.

    Raises:
        InvalidOption: A limit below 1 or a timeout that is not positive.
    """

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    timeout: timedelta = DEFAULT_POOL_TIMEOUT

    def __post_init__(self) -> None:
        count = self.max_connections
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidOption(f"max_connections must be a whole number >= 1, got {count!r}")
        if not isinstance(self.timeout, timedelta) or self.timeout <= timedelta(0):
            raise InvalidOption(f"pool_timeout must be a positive timedelta, got {self.timeout!r}")

    @property
    def pool_options(self) -> dict[str, Any]:
        """The options of a BlockingConnectionPool keeping to these limits."""
        return {"max_connections": self.max_connections, "timeout": self.timeout.total_seconds()}


class PoolExhausted(redis_errors.ConnectionError):
    """No connection of a client came free in time (the driver reports StoreUnavailable)."""

    def __init__(self, max_connections: int, timeout_seconds: float | None) -> None:
        seconds = f"{timeout_seconds or 0:g} s"
        super().__init__(
            f"no free connection within {seconds}: all {max_connections} connections of the "
            f"pool are in use (RedisDriver max_connections={max_connections}, "
            f"pool_timeout={seconds})"
        )


class WaitingPool(BlockingConnectionPool):
    """redis-py's async BlockingConnectionPool, whose timeout raises PoolExhausted."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """Return a free connection, waiting up to the pool's timeout for one."""
        try:
            # redis-py leaves get_connection unannotated.
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis_errors.ConnectionError as exc:
            if not isinstance(exc.__cause__, TimeoutError):  # a connect error: as it is
                raise
            raise PoolExhausted(self.max_connections, self.timeout) from exc


class WaitingSentinelPool(SentinelConnectionPool, WaitingPool):
    """The async pool of a Sentinel-managed master, waiting like WaitingPool."""


class SyncWaitingPool(redis.BlockingConnectionPool):
    """redis-py's BlockingConnectionPool, whose timeout raises PoolExhausted."""

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """Return a free connection, waiting up to the pool's timeout for one."""
        try:
            # redis-py leaves get_connection unannotated.
            return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis_errors.ConnectionError as exc:
            if not isinstance(exc.__context__, queue.Empty):  # a connect error: as it is
                raise
            raise PoolExhausted(self.max_connections, self.timeout) from exc


class SyncWaitingSentinelPool(redis.sentinel.SentinelConnectionPool, SyncWaitingPool):
    """The pool of a Sentinel-managed master for sync code, waiting like SyncWaitingPool."""


class WaitingCluster(RedisCluster):
    """An async Cluster client whose commands take one of `max_connections` turns.

    Args:
        limits: The number of turns (also each node's connection limit) and the wait for one.
        **kwargs: RedisCluster's.
    """

    def __init__(self, *, limits: PoolLimits, **kwargs: Any) -> None:
        super().__init__(**kwargs, max_connections=limits.max_connections)
        self.limits = limits
        self._turns: asyncio.Semaphore | None = None  # made on the loop that uses the client

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold a turn for the block; raise PoolExhausted when none comes free in time."""
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.limits.max_connections)
        turns = self._turns
        try:
            async with asyncio.timeout(self.limits.timeout.total_seconds()):
                await turns.acquire()
        except TimeoutError:
            raise _exhausted(self.limits) from None
        try:
            yield
        finally:
            turns.release()


class SyncWaitingCluster(redis.cluster.RedisCluster):
    """A Cluster client for sync code whose commands take one of `max_connections` turns.

    Args:
        limits: The number of turns (also each node's connection limit) and the wait for one.
        **kwargs: RedisCluster's.
    """

    def __init__(self, *, limits: PoolLimits, **kwargs: Any) -> None:
        super().__init__(**kwargs, max_connections=limits.max_connections)
        self.limits = limits
        self._turns = threading.BoundedSemaphore(limits.max_connections)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold a turn for the block; raise PoolExhausted when none comes free in time."""
        if not self._turns.acquire(timeout=self.limits.timeout.total_seconds()):
            raise _exhausted(self.limits)
        try:
            yield
        finally:
            self._turns.release()


def _exhausted(limits: PoolLimits) -> PoolExhausted:
    return PoolExhausted(limits.max_connections, limits.timeout.total_seconds())
