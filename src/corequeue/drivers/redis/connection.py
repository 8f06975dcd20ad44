"""Connections of the Redis driver: URL forms, one set of clients per event loop, error mapping.

URL forms understood by `RedisDriver.from_url`:

    redis://[[user]:password@]host[:port][/db][?option=value...]     standalone
    rediss://...                                                       standalone over TLS
    unix://[[user]:password@]/path/to/redis.sock[?db=N]                standalone, Unix socket
    redis+cluster://[[user]:password@]host:port[,host:port...]         Redis Cluster
    rediss+cluster://...                                               Redis Cluster over TLS
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]
    rediss+sentinel://...                                              Sentinel, TLS to the master

`cluster=True` turns a plain redis:// or rediss:// URL into a Cluster connection. Query options
are redis-py's (`socket_timeout`, `ssl_cert_reqs`, ...). Over TLS the server's certificate and
host name are verified, on every redis-py version (5.x did not check the host name by default);
only `ssl_cert_reqs=none` (no verification at all) or an explicit `ssl_check_hostname=false`
turns that off. A password is never logged or shown: `corequeue.redact.redact()` masks it in
every URL the driver prints, and a URL whose password holds an unencoded `/`, `?` or `#` is
refused.

Every command of a queue names keys of one hash slot; `execute()` runs it there, following a
Cluster that reshards that slot (MOVED, ASK, TRYAGAIN).

The clients the driver builds from a URL keep to `PoolLimits` (see `pools.py`): a caller waits
for a free connection rather than fail at a limit. Beside the async clients of each event loop,
`UrlSource.open_sync()` builds the one synchronous client of `push_sync` (see `sync.py`) from
the same URL and options.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.cluster
import redis.retry
import redis.sentinel
from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.connection import parse_url as parse_redis_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

from corequeue.drivers.redis.pools import (
    PoolLimits,
    SyncWaitingCluster,
    SyncWaitingPool,
    SyncWaitingSentinelPool,
    WaitingCluster,
    WaitingPool,
    WaitingSentinelPool,
)
from corequeue.errors import DriverError, InvalidOption, StoreUnavailable
from corequeue.redact import redact as redact  # re-exported: tests and tools import it here
from corequeue.redact import refuse_ambiguous

AnyRedis = Redis | RedisCluster
"""A client the driver can use: standalone (or Sentinel-managed) Redis, or Redis Cluster."""

SyncRedis = redis.Redis | redis.cluster.RedisCluster
"""A synchronous client for `push_sync`: standalone (or Sentinel-managed) Redis, or Cluster."""

LONGEST_BLOCK_SECONDS = 2.0
"""The longest one BLPOP waits; a longer pop timeout blocks several times in a row."""

TRYAGAIN_BUDGET_SECONDS: Final = 5.0
"""How long a command answered TRYAGAIN (its slot is half moved) is retried before it fails."""

TRYAGAIN_FIRST_PAUSE: Final = 0.005
"""The first pause before a command answered TRYAGAIN is sent again; each next one doubles."""

TRYAGAIN_LONGEST_PAUSE: Final = 0.1
"""The longest pause between two tries of a command answered TRYAGAIN."""

_STANDALONE_SCHEMES = {"redis", "rediss", "unix"}
_CLUSTER_SCHEMES = {"redis+cluster", "rediss+cluster"}
_SENTINEL_SCHEMES = {"redis+sentinel", "rediss+sentinel"}

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # also AuthenticationError, BusyLoadingError, MasterNotFound
    redis_errors.TimeoutError,
    redis_errors.ClusterError,  # ClusterDownError, MasterDownError, "TTL exhausted"
    redis_errors.TryAgainError,  # a slot still half moved once execute() gave up waiting
    redis_errors.AskError,  # and MovedError: a slot that kept moving
    redis_errors.RedisClusterException,
    redis_errors.ReadOnlyError,  # a replica promoted under us: the next try finds the master
    redis_errors.OutOfMemoryError,
    redis_errors.InvalidResponse,  # something answers at that address, but not Redis
    OSError,
    TimeoutError,
)


class _Closeable(Protocol):
    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Clients:
    """The clients one event loop uses.

    Attributes:
        main: Runs scripts and every short command.
        blocking: Runs the blocking waits (BLPOP), so a waiting pop never delays other calls.
        owned: What `close()` closes: the clients the driver created itself.
    """

    main: AnyRedis
    blocking: AnyRedis
    owned: tuple[_Closeable, ...]

    @property
    def longest_block_seconds(self) -> float:
        """How long one blocking call may wait: well under the blocking client's socket timeout."""
        return _longest_block(self.blocking)


@dataclass(frozen=True, slots=True)
class SyncClients:
    """The synchronous client of `push_sync`, and what `close()` closes (not a given client)."""

    main: SyncRedis
    owned: tuple[Callable[[], None], ...]

    def close(self) -> None:
        """Close what the driver opened."""
        for close in self.owned:
            close()


class ClientSource(Protocol):
    """Opens the clients of one event loop, and the synchronous client."""

    display: str
    """Where the store is, with no password: for messages and repr()."""

    def open(self, first: bool) -> Clients:
        """Return clients for the running event loop; `first` for the first loop of a driver."""
        ...

    def open_sync(self) -> SyncClients | None:
        """Return the synchronous client; None when there is none (push on a loop thread)."""
        ...


class UrlSource:
    """Opens fresh clients from a URL for every event loop that uses the driver."""

    def __init__(
        self,
        url: str,
        *,
        cluster: bool = False,
        options: dict[str, Any],
        limits: PoolLimits | None = None,
    ) -> None:
        refuse_ambiguous(url, "Redis URL")
        self._url = url
        self._kind = _kind_of(url, cluster)
        self._limits = limits or PoolLimits()
        self._options = {"retry": _default_retry(), **options, "decode_responses": False}
        self._options.update(_hostname_check(url, self._options))
        self.display = redact(url)

    def open(self, first: bool) -> Clients:
        """Build a main and a blocking client, each with its own connections."""
        if self._kind == "sentinel":
            sentinel, main, blocking = _open_sentinel(self._url, self._options, self._limits)
            return Clients(main, blocking, owned=(main, blocking, _Sentinels(sentinel)))
        first_client, second_client = self._open_one(), self._open_one()
        return Clients(first_client, second_client, owned=(first_client, second_client))

    def open_sync(self) -> SyncClients:
        """Build the synchronous client, from the same URL, options and limits."""
        options = {**self._options, "retry": _sync_retry(self._options["retry"])}
        if self._kind == "sentinel":
            return _open_sentinel_sync(self._url, options, self._limits)
        client: SyncRedis
        if self._kind == "cluster":
            client = _open_cluster_sync(self._url, options, self._limits)
        else:
            pool = SyncWaitingPool.from_url(self._url, **options, **self._limits.pool_options)
            client = redis.Redis.from_pool(pool)
        return SyncClients(client, owned=(client.close,))

    def _open_one(self) -> AnyRedis:
        if self._kind == "cluster":
            return _open_cluster(self._url, self._options, self._limits)
        pool = WaitingPool.from_url(self._url, **self._options, **self._limits.pool_options)
        return Redis.from_pool(pool)


class _Sentinels:
    """Closes the connections to the sentinels themselves (Sentinel.aclose() is redis-py 8.1+)."""

    def __init__(self, sentinel: Sentinel) -> None:
        self._sentinel = sentinel

    async def aclose(self) -> None:
        for client in self._sentinel.sentinels:
            await client.aclose()


class GivenSource:
    """Uses a client the caller built; other event loops get copies of a standalone client.

    The synchronous client is the one given, if any: a driver built on clients of the
    caller's own has no URL to build one from.
    """

    def __init__(
        self, client: AnyRedis, blocking: AnyRedis | None, sync_client: SyncRedis | None = None
    ) -> None:
        self._client = client
        self._blocking = blocking
        self._sync_client = sync_client
        self.display = _describe(client)

    def open_sync(self) -> SyncClients | None:
        """Return the synchronous client given (the driver does not close it), or None."""
        if self._sync_client is None:
            return None
        return SyncClients(self._sync_client, owned=())

    def open(self, first: bool) -> Clients:
        """Return the given client on the first loop, copies on the others."""
        if first:
            if self._blocking is not None:
                return Clients(self._client, self._blocking, owned=())
            twin = _copy(self._client)
            if twin is None:  # a Cluster client gives each concurrent call its own connection
                return Clients(self._client, self._client, owned=())
            return Clients(self._client, twin, owned=(twin,))
        main, blocking = _copy(self._client), _copy(self._client)
        if main is None or blocking is None:
            raise DriverError(
                f"the Redis client given for {self.display} serves one event loop only; "
                "use RedisDriver.from_url(...) to use the driver from several loops (or "
                "give RedisDriver a sync_client= for push_sync)"
            )
        return Clients(main, blocking, owned=(main, blocking))


class LoopClients:
    """Keeps one set of clients per event loop: redis-py connections belong to one loop."""

    def __init__(self, source: ClientSource) -> None:
        self._source = source
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Clients] = (
            weakref.WeakKeyDictionary()
        )
        self._opened = False
        self._lock = threading.Lock()

    async def current(self, *, given: bool = True) -> Clients:
        """Return the clients of the running loop, opening them on first use.

        Args:
            given: Whether this loop may take the clients given to the driver, when it is the
                first to open any. The private loop of `push_sync` never does: they stay for
                the caller's own loop.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._by_loop.get(loop)
            if clients is None:
                first = given and not self._opened
                clients = self._source.open(first=first)
                self._opened = self._opened or first
                self._by_loop[loop] = clients
        for client in (clients.main, clients.blocking):
            if isinstance(client, RedisCluster):
                # Commands sent at once to a Cluster client that has not read the slot map yet
                # go to any node and come back MOVED; load the map first (a no-op once done).
                await client.initialize()
        return clients

    async def close(self) -> None:
        """Close the clients the driver opened, on every loop still running."""
        current = asyncio.get_running_loop()
        with self._lock:
            opened = list(self._by_loop.items())
            self._by_loop.clear()
        for loop, clients in opened:
            if loop is current:
                await _close(clients)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(_close(clients), loop)
                await asyncio.wrap_future(future)
            elif not loop.is_closed():  # stopped: run it once more, in a thread, to close
                await asyncio.to_thread(loop.run_until_complete, _close(clients))
            # A closed loop runs nothing more: its connections end with the process. Close the
            # driver before the loops that used it to avoid that.


async def execute(client: AnyRedis, slot: int, *args: Any) -> Any:
    """Run one command whose keys all lie in hash slot `slot`, and return its answer.

    A standalone client runs it as it is. On Redis Cluster it goes to the node holding `slot`
    and follows a reshard of that slot: MOVED (the slot moved: redis-py updates its map and
    sends it again), ASK (the command's keys moved ahead of the slot: ASKING and the command go
    to the target node back to back on one connection, which redis-py's own redirect does not
    do) and TRYAGAIN (the keys are split between two nodes, or a multi-key command meets an
    importing node: sent again after a short, growing pause, for up to
    TRYAGAIN_BUDGET_SECONDS, then the TryAgainError is raised).
    """
    if not isinstance(client, RedisCluster):
        return await client.execute_command(*args)  # type: ignore[no-untyped-call]  # redis-py
    turn = client.turn() if isinstance(client, WaitingCluster) else contextlib.nullcontext()
    async with turn:
        pause, waited = TRYAGAIN_FIRST_PAUSE, 0.0
        while True:
            try:
                return await _execute_in_slot(client, slot, args)
            except (redis_errors.TryAgainError, redis_errors.AskError):
                # An AskError (or MovedError) here is the answer to ASKING: the slot moved on
                # meanwhile. The next try starts again from the owner.
                if waited >= TRYAGAIN_BUDGET_SECONDS:
                    raise
                await asyncio.sleep(pause)
                waited += pause
                pause = min(pause * 2, TRYAGAIN_LONGEST_PAUSE)


async def _execute_in_slot(cluster: RedisCluster, slot: int, args: tuple[Any, ...]) -> Any:
    try:
        node = cluster.nodes_manager.get_node_from_slot(slot)
    except redis_errors.RedisClusterException:  # no map yet: redis-py's own path reads it
        return await cluster.execute_command(*args)
    try:
        return await node.execute_command(*args)
    except (redis_errors.MovedError, redis_errors.ConnectionError, redis_errors.TimeoutError):
        # (MovedError first: redis-py derives it from AskError.) redis-py's own path follows
        # MOVED (moving the slot in its map), reconnects, and reads the topology again after a
        # failover. Answers a node gives while the slot migrates come back from it as they
        # are: ASK ends in TRYAGAIN for a script (its placeholder key exists nowhere), and
        # TRYAGAIN is retried above.
        return await cluster.execute_command(*args)
    except redis_errors.AskError as ask:
        return await _execute_asking(cluster, ask, args)


async def _execute_asking(cluster: RedisCluster, ask: redis_errors.AskError, args: Any) -> Any:
    """Send ASKING and the command to the node `ask` names, on one connection, in order."""
    node = cluster.get_node(host=ask.host, port=ask.port)
    temporary = node is None  # an importing node that holds no slot yet is not in the map
    if node is None:
        kwargs = dict(cluster.nodes_manager.connection_kwargs)
        node = ClusterNode(ask.host, ask.port, "primary", **kwargs)
    asking, command = PipelineCommand(0, "ASKING"), PipelineCommand(1, *args)
    try:
        await node.execute_pipeline([asking, command])
    finally:
        if temporary:
            await node.disconnect()
    for step in (asking, command):
        if isinstance(step.result, BaseException):
            raise step.result
    return command.result


@contextmanager
def store_errors(display: str) -> Iterator[None]:
    """Re-raise redis-py errors as StoreUnavailable (cannot reach) or DriverError (refused)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(display, _reason(exc)) from exc
    except redis_errors.RedisError as exc:
        raise DriverError(f"redis at {display} refused the command: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _kind_of(url: str, cluster: bool) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme in _SENTINEL_SCHEMES:
        return "sentinel"
    if scheme in _CLUSTER_SCHEMES or (cluster and scheme in {"redis", "rediss"}):
        return "cluster"
    if scheme in _STANDALONE_SCHEMES:
        return "standalone"
    known = ", ".join(sorted(_STANDALONE_SCHEMES | _CLUSTER_SCHEMES | _SENTINEL_SCHEMES))
    raise InvalidOption(f"unsupported Redis URL {redact(url)!r}: expected a scheme among {known}")


def _hostname_check(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Return `ssl_check_hostname=True` for a TLS URL whose certificate is verified.

    redis-py 5.x left host names unchecked unless asked (6.0 turned it on); asking explicitly
    holds on every version. An explicit setting (option or URL query) is kept, and so is
    `ssl_cert_reqs=none`: Python cannot check a host name without verifying the certificate.
    """
    parts = urlsplit(url)
    if not parts.scheme.lower().startswith("rediss"):
        return {}
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if "ssl_check_hostname" in query or "ssl_check_hostname" in options:
        return {}
    cert_reqs = options.get("ssl_cert_reqs", query.get("ssl_cert_reqs", "required"))
    if cert_reqs in (ssl.CERT_NONE, "none", "CERT_NONE"):
        return {}
    return {"ssl_check_hostname": True}


def _default_retry() -> Retry:
    # A few quick retries ride out a dropped connection; a store that stays down is reported
    # fast (redis-py's own default retries ten times) and the consumer backs off by itself.
    return Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.02), retries=3)


def _sync_retry(retry: Any) -> Any:
    """Return the synchronous twin of an asyncio `Retry` (a sync client cannot await one)."""
    if not isinstance(retry, Retry):
        return retry  # a sync Retry given by the caller, or None
    # redis-py offers no public accessor for the backoff and the errors retried.
    return redis.retry.Retry(retry._backoff, retry.get_retries(), retry._supported_errors)


@dataclass(frozen=True, slots=True)
class _MultiHostUrl:
    """A cluster or sentinel URL: several hosts, then redis-py's connection options."""

    hosts: list[tuple[str, int]]
    path: list[str]
    options: dict[str, Any]


def _parse_multi_host(url: str, default_port: int) -> _MultiHostUrl:
    parts = urlsplit(url)
    tls = parts.scheme.lower().startswith("rediss")
    userinfo, at, host_list = parts.netloc.rpartition("@")
    hosts = [_host_port(host, default_port) for host in host_list.split(",") if host]
    if not hosts:
        raise InvalidOption(f"Redis URL {redact(url)!r} names no host")
    # Let redis-py read the user, password and query options, as it does for redis:// URLs.
    single = f"{'rediss' if tls else 'redis'}://{userinfo}{at}{host_list.split(',')[0]}"
    options: dict[str, Any] = dict(parse_redis_url(f"{single}/?{parts.query}"))
    for key in ("host", "port", "connection_class"):
        options.pop(key, None)
    if tls:
        options["ssl"] = True
    path = [unquote(segment) for segment in parts.path.split("/") if segment]
    return _MultiHostUrl(hosts, path, options)


def _host_port(host: str, default_port: int) -> tuple[str, int]:
    if host.startswith("["):  # [IPv6]:port
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    if not port:
        return name, default_port
    try:
        return name, int(port)
    except ValueError:
        raise InvalidOption(f"bad port in Redis host {host!r}") from None


def _open_cluster(url: str, options: dict[str, Any], limits: PoolLimits) -> WaitingCluster:
    hosts, kwargs, limits = _cluster_settings(url, options, limits)
    nodes = [ClusterNode(host, port) for host, port in hosts]
    return WaitingCluster(limits=limits, startup_nodes=nodes, **kwargs)


def _open_cluster_sync(url: str, options: dict[str, Any], limits: PoolLimits) -> SyncWaitingCluster:
    hosts, kwargs, limits = _cluster_settings(url, options, limits)
    nodes = [
        redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]  # redis-py
        for host, port in hosts
    ]
    return SyncWaitingCluster(limits=limits, startup_nodes=nodes, **kwargs)


def _cluster_settings(
    url: str, options: dict[str, Any], limits: PoolLimits
) -> tuple[list[tuple[str, int]], dict[str, Any], PoolLimits]:
    """Return a Cluster URL's startup nodes, its client options and the pool limits."""
    parsed = _parse_multi_host(url, 6379)
    if parsed.path not in ([], ["0"]):
        raise InvalidOption(f"Redis Cluster has database 0 only, got {redact(url)!r}")
    # A queue lives in one slot: on MOVED, moving that slot in the client's map is enough.
    # redis-py's periodic full reset on MOVED would close connections other calls are using.
    kwargs = {"reinitialize_steps": 0, **parsed.options, **options}
    kwargs.pop("db", None)
    if "max_connections" in kwargs:  # from the URL's query: it wins, as for standalone URLs
        limits = replace(limits, max_connections=int(kwargs.pop("max_connections")))
    return parsed.hosts, kwargs, limits


def _open_sentinel(
    url: str, options: dict[str, Any], limits: PoolLimits
) -> tuple[Sentinel, Redis, Redis]:
    hosts, service, kwargs, sentinel_kwargs = _sentinel_settings(url, options)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        hosts, sentinel_kwargs=sentinel_kwargs, **kwargs
    )
    pool = {"connection_pool_class": WaitingSentinelPool, **limits.pool_options}
    return sentinel, sentinel.master_for(service, **pool), sentinel.master_for(service, **pool)


def _open_sentinel_sync(url: str, options: dict[str, Any], limits: PoolLimits) -> SyncClients:
    """Return the synchronous client of a Sentinel-managed master, closing the sentinels too."""
    hosts, service, kwargs, sentinel_kwargs = _sentinel_settings(url, options)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]  # redis-py
        hosts, sentinel_kwargs=sentinel_kwargs, **kwargs
    )
    pool = {"connection_pool_class": SyncWaitingSentinelPool, **limits.pool_options}
    main: redis.Redis = sentinel.master_for(service, **pool)  # type: ignore[no-untyped-call]
    closers = [main.close, *(client.close for client in sentinel.sentinels)]
    return SyncClients(main, owned=tuple(closers))


def _sentinel_settings(
    url: str, options: dict[str, Any]
) -> tuple[list[tuple[str, int]], str, dict[str, Any], Any]:
    """Return a Sentinel URL's sentinels, service name, client options and sentinel options."""
    parsed = _parse_multi_host(url, 26379)
    if not parsed.path or len(parsed.path) > 2:
        raise InvalidOption(
            f"Sentinel URL {redact(url)!r} must end in /service_name or /service_name/db"
        )
    kwargs = {**parsed.options, **options}
    if len(parsed.path) == 2:
        kwargs["db"] = int(parsed.path[1])
    sentinel_kwargs = kwargs.pop("sentinel_kwargs", None)
    return parsed.hosts, parsed.path[0], kwargs, sentinel_kwargs


def _copy(client: AnyRedis) -> Redis | None:
    """Return a standalone client with the same settings and its own pool, or None."""
    if isinstance(client, RedisCluster):
        return None
    pool = client.connection_pool
    if type(pool) is not ConnectionPool:  # Sentinel and custom pools cannot be rebuilt safely
        return None
    copied = ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs)
    return Redis.from_pool(copied)


def _describe(client: AnyRedis) -> str:
    if isinstance(client, RedisCluster):
        nodes = ",".join(f"{node.host}:{node.port}" for node in client.get_nodes())
        return f"redis+cluster://{nodes or 'cluster'}"
    kwargs = client.connection_pool.connection_kwargs
    service = getattr(client.connection_pool, "service_name", None)
    if service is not None:
        return f"redis+sentinel:///{service}/{kwargs.get('db', 0)}"
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if client.connection_pool.connection_class is SSLConnection else "redis"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"{scheme}://{host}:{port}/{kwargs.get('db', 0)}"


def _longest_block(client: AnyRedis) -> float:
    if isinstance(client, RedisCluster):
        kwargs = client.nodes_manager.connection_kwargs
    else:
        kwargs = client.connection_pool.connection_kwargs
    socket_timeout = kwargs.get("socket_timeout")
    if not socket_timeout:
        return LONGEST_BLOCK_SECONDS
    # Redis ends a timed-out BLPOP up to 1/hz s late (100 ms by default): keep clear of that.
    return max(0.001, min(LONGEST_BLOCK_SECONDS, float(socket_timeout) / 2 - 0.1))


async def _close(clients: Clients) -> None:
    for closeable in clients.owned:
        await closeable.aclose()
