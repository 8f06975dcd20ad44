"""The driver registry: for each driver name, its configuration keys, settings class and builder.

Adding a driver means adding one `DriverSpec` to `DRIVER_REGISTRY`: the configuration learns
its keys (checked, and refused on queues of other drivers), `QueueSettings.store` holds its
settings class, and `QueueFactory` builds it. Driver modules are imported only when a queue is
built, so redis and psycopg are needed only by the queues that use them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, Self, TypeVar

from corequeue.config.schema import (
    DEFAULT_QUEUE,
    DEFAULT_REDIS_URL,
    DEFAULT_SQLITE_PATH,
    Invalid,
    Key,
    KeyProblem,
    postgres_dsn,
    shown,
    text,
)
from corequeue.errors import InvalidOption
from corequeue.redact import redact

if TYPE_CHECKING:
    from corequeue.drivers.base import Driver


@dataclass(frozen=True, slots=True)
class StoreContext:
    """What a driver's settings may need besides its own keys.

    Attributes:
        base_dir: The configuration file's folder, against which relative paths are resolved.
        redis_urls: The configured Redis connections (`redis.<name>.url`), by name.
    """

    base_dir: Path | None = None
    redis_urls: Mapping[str, str] = field(default_factory=dict)


class StoreSettings(Protocol):
    """The settings of one driver kind: read from its keys, and described without secrets."""

    @classmethod
    def from_keys(cls, values: Mapping[str, Any], context: StoreContext) -> Self:
        """Build the settings from the driver's checked keys; raise KeyProblem if they clash."""
        ...

    def describe(self) -> str:
        """Where the queue's jobs live, with any password masked."""
        ...


S = TypeVar("S", bound=StoreSettings)


@dataclass(frozen=True, slots=True)
class DriverSpec(Generic[S]):
    """One entry of the registry.

    Attributes:
        keys: The keys a queue of this driver may have beyond the common ones.
        settings: The settings class `QueueSettings.store` holds for this driver.
        build: Returns the driver of queue `name` from its settings.
        implied_by: A key whose presence means this driver when `driver` is not given
            (`redisName` means redis, as in the Go service).
    """

    keys: Mapping[str, Key]
    settings: type[S]
    build: Callable[[str, S], Driver]
    implied_by: str | None = None

    def read(self, values: Mapping[str, Any], context: StoreContext) -> S:
        """Return this driver's settings from its checked keys; raise KeyProblem if they clash."""
        return self.settings.from_keys(values, context)


@dataclass(frozen=True, slots=True)
class MemorySettings:
    """`driver: memory`: an InProcessDriver, for tests; nothing to set."""

    @classmethod
    def from_keys(cls, values: Mapping[str, Any], context: StoreContext) -> MemorySettings:
        """Return the (empty) settings."""
        return cls()

    def describe(self) -> str:
        """Say `memory`."""
        return "memory"


@dataclass(frozen=True, slots=True)
class SQLiteSettings:
    """`driver: sqlite`: the database file (`path`, relative to the configuration file)."""

    path: Path = Path(DEFAULT_SQLITE_PATH)

    @classmethod
    def from_keys(cls, values: Mapping[str, Any], context: StoreContext) -> SQLiteSettings:
        """Return the settings, the path resolved against the configuration's folder."""
        path = Path(values.get("path", DEFAULT_SQLITE_PATH)).expanduser()
        if context.base_dir is not None and not path.is_absolute():
            path = context.base_dir / path
        return cls(path)

    def describe(self) -> str:
        """Say `sqlite <path>`."""
        return f"sqlite {self.path}"


@dataclass(frozen=True, slots=True, repr=False)
class RedisQueueSettings:
    """`driver: redis` (or a `redisName`): the named connection and its URL; repr masks it."""

    redis_name: str = DEFAULT_QUEUE
    url: str = DEFAULT_REDIS_URL

    @classmethod
    def from_keys(cls, values: Mapping[str, Any], context: StoreContext) -> RedisQueueSettings:
        """Return the settings; `redisName` must name a `redis.<name>` entry, or `default`."""
        name = values.get("redisName", DEFAULT_QUEUE)
        if name in context.redis_urls:
            return cls(name, context.redis_urls[name])
        if name == DEFAULT_QUEUE:  # as in Go, the `default` connection needs no entry
            return cls(name)
        configured = ", ".join(context.redis_urls) or "none"
        raise KeyProblem(
            "redisName",
            f"expected the name of a redis.<name> entry (configured: {configured}), "
            f"got {shown(name)}",
        )

    def describe(self) -> str:
        """Say `redis <url, masked> (redisName <name>)`."""
        return f"redis {redact(self.url)} (redisName {self.redis_name})"

    def __repr__(self) -> str:
        return f"RedisQueueSettings({self.redis_name!r}, {redact(self.url)!r})"


@dataclass(frozen=True, slots=True, repr=False)
class PostgresSettings:
    """`driver: postgres`: the DSN (required) and the schema of corequeue's tables."""

    dsn: str
    schema: str = "corequeue"

    @classmethod
    def from_keys(cls, values: Mapping[str, Any], context: StoreContext) -> PostgresSettings:
        """Return the settings; `dsn` is required."""
        if "dsn" not in values:
            raise KeyProblem("dsn", "expected a PostgreSQL DSN: driver postgres needs one")
        return cls(values["dsn"], values.get("schema", "corequeue"))

    def describe(self) -> str:
        """Say `postgres <dsn, masked> (schema <schema>)`."""
        return f"postgres {redact(self.dsn)} (schema {self.schema})"

    def __repr__(self) -> str:
        return f"PostgresSettings({redact(self.dsn)!r}, schema={self.schema!r})"


def _build_memory(name: str, settings: MemorySettings) -> Driver:
    driver: Driver = _optional("corequeue.drivers.in_process", "InProcessDriver", "")()
    return driver


def _build_sqlite(name: str, settings: SQLiteSettings) -> Driver:
    driver: Driver = _optional("corequeue.drivers.sqlite", "SQLiteDriver", "")(
        settings.path, name=name
    )
    return driver


def _build_redis(name: str, settings: RedisQueueSettings) -> Driver:
    redis = _optional("corequeue.drivers.redis", "RedisDriver", "redis")
    driver: Driver = redis.from_url(settings.url, name=name)
    return driver


def _build_postgres(name: str, settings: PostgresSettings) -> Driver:
    postgres = _optional("corequeue.drivers.postgres", "PostgresDriver", "postgres")
    driver: Driver = postgres(settings.dsn, name=name, schema=settings.schema)
    return driver


def _optional(module: str, name: str, extra: str) -> Any:
    """Return class `name` of `module`, saying which extra to install when it cannot."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        hint = f"; install corequeue[{extra}]" if extra else ""
        raise InvalidOption(f"{name} is not available ({exc}){hint}") from exc


DRIVER_REGISTRY: Final[Mapping[str, DriverSpec[Any]]] = MappingProxyType(
    {
        "memory": DriverSpec({}, MemorySettings, _build_memory),
        "sqlite": DriverSpec({"path": Key(text)}, SQLiteSettings, _build_sqlite),
        "redis": DriverSpec(
            {"redisName": Key(text)}, RedisQueueSettings, _build_redis, implied_by="redisName"
        ),
        "postgres": DriverSpec(
            {"dsn": Key(postgres_dsn), "schema": Key(text)}, PostgresSettings, _build_postgres
        ),
    }
)
"""Every driver a configuration can name, in the order error messages list them."""

DRIVERS: Final[tuple[str, ...]] = tuple(DRIVER_REGISTRY)
"""The driver names, as `queue.<name>.driver` takes them."""

DEFAULT_DRIVER: Final = "sqlite"
"""The driver of a queue that names none and no key implying one."""


def driver_name(value: object) -> str:
    """The check of `queue.<name>.driver`: one of the registered names."""
    if not isinstance(value, str) or value not in DRIVER_REGISTRY:
        raise Invalid(f"expected one of {', '.join(DRIVERS)}, got {shown(value)}")
    return value


def implied_driver(keys: Mapping[str, Any]) -> str:
    """The driver of a queue whose settings `keys` do not name one."""
    for name, spec in DRIVER_REGISTRY.items():
        if spec.implied_by is not None and spec.implied_by in keys:
            return name
    return DEFAULT_DRIVER


def drivers_with(key: str) -> list[str]:
    """The drivers that take `key`."""
    return [name for name, spec in DRIVER_REGISTRY.items() if key in spec.keys]
