"""The synchronous side of the Redis driver: the client of `push_sync` and its commands.

One redis-py synchronous client per driver, opened on first use from the same URL, options
and pool limits as the async clients, serves every thread (redis-py's sync clients are
thread-safe). On Redis Cluster, `execute_sync()` follows a reshard of the queue's slot as
`execute()` does for the async clients: MOVED, ASK (ASKING and the command back to back on one
connection) and TRYAGAIN (sent again after a growing pause, within TRYAGAIN_BUDGET_SECONDS).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import redis
import redis.cluster
from redis import exceptions as redis_errors

from corequeue.drivers.redis.connection import (
    TRYAGAIN_BUDGET_SECONDS,
    TRYAGAIN_FIRST_PAUSE,
    TRYAGAIN_LONGEST_PAUSE,
    ClientSource,
    SyncClients,
    SyncRedis,
)
from corequeue.drivers.redis.pools import SyncWaitingCluster


class SyncClient:
    """Opens the driver's synchronous client on first use, from any thread, and closes it.

    Args:
        source: Where the clients come from (a URL, or clients given to the driver).
    """

    def __init__(self, source: ClientSource) -> None:
        self._source = source
        self._clients: SyncClients | None = None
        self._opened = False
        self._lock = threading.Lock()

    def current(self) -> SyncRedis | None:
        """Return the synchronous client; None when the source has none to give."""
        with self._lock:
            if not self._opened:
                self._clients = self._source.open_sync()
                self._opened = True
            return None if self._clients is None else self._clients.main

    def close(self) -> None:
        """Close the client if the driver opened it; the next `current()` opens a new one."""
        with self._lock:
            clients, self._clients, self._opened = self._clients, None, False
        if clients is not None:
            clients.close()


def execute_sync(client: SyncRedis, slot: int, *args: Any) -> Any:
    """Run one command whose keys all lie in hash slot `slot`, and return its answer.

    The synchronous form of `connection.execute()`, with the same handling of a Cluster that
    reshards `slot`; a SyncWaitingCluster's command first waits for a turn.
    """
    if not isinstance(client, redis.cluster.RedisCluster):
        return _send(client, args)
    turn = client.turn() if isinstance(client, SyncWaitingCluster) else contextlib.nullcontext()
    with turn:
        pause, waited = TRYAGAIN_FIRST_PAUSE, 0.0
        while True:
            try:
                return _execute_in_slot(client, slot, args)
            except (redis_errors.TryAgainError, redis_errors.AskError):
                # As in execute(): an AskError here answers ASKING; start again from the owner.
                if waited >= TRYAGAIN_BUDGET_SECONDS:
                    raise
                time.sleep(pause)
                waited += pause
                pause = min(pause * 2, TRYAGAIN_LONGEST_PAUSE)


def _execute_in_slot(cluster: redis.cluster.RedisCluster, slot: int, args: tuple[Any, ...]) -> Any:
    try:
        node = cluster.nodes_manager.get_node_from_slot(slot)
    except redis_errors.RedisClusterException:  # no map: redis-py's own path reads it
        return _send(cluster, args)
    try:
        return _send(cluster.get_redis_connection(node), args)
    except (redis_errors.MovedError, redis_errors.ConnectionError, redis_errors.TimeoutError):
        # As in execute(): redis-py's own path follows MOVED (moving the slot in its map),
        # reconnects and reads the topology again after a failover.
        return _send(cluster, args)
    except redis_errors.AskError as ask:
        return _execute_asking(cluster, ask, args)


def _execute_asking(
    cluster: redis.cluster.RedisCluster, ask: redis_errors.AskError, args: tuple[Any, ...]
) -> Any:
    """Send ASKING and the command to the node `ask` names, on one connection, in order."""
    # redis-py leaves get_node unannotated.
    node = cluster.get_node(host=ask.host, port=ask.port)  # type: ignore[no-untyped-call]
    if node is None:  # an importing node that holds no slot yet is not in the map
        kwargs = dict(cluster.nodes_manager.connection_kwargs)
        target = redis.Redis(host=ask.host, port=ask.port, **kwargs)
    else:
        target = cluster.get_redis_connection(node)
    try:
        # A standalone pipeline sends its commands on one connection, back to back.
        with target.pipeline(transaction=False) as pipe:
            _send(pipe, ("ASKING",))
            _send(pipe, args)
            asking, answer = pipe.execute(raise_on_error=False)
    finally:
        if node is None:
            target.close()
    for step in (asking, answer):
        if isinstance(step, BaseException):
            raise step
    return answer


def _send(client: Any, args: tuple[Any, ...]) -> Any:
    """Call `client.execute_command(*args)` (redis-py leaves it unannotated)."""
    return client.execute_command(*args)
