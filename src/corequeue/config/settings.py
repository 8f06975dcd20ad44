"""The typed, frozen result of reading a configuration: Config, QueueSettings, RedisSettings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Final

from corequeue.config.drivers import (
    DEFAULT_DRIVER,
    DRIVER_REGISTRY,
    DRIVERS,
    SQLiteSettings,
    StoreContext,
    StoreSettings,
)
from corequeue.config.schedules import PeriodicSettings
from corequeue.config.schema import (
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_QUEUE,
    DEFAULT_REDIS_URL,
    DEFAULT_SHUTDOWN_GRACE,
    KeyProblem,
)
from corequeue.errors import InvalidOption
from corequeue.limits import Limits
from corequeue.redact import redact

BUILT_IN: Final = "built-in default"
"""The `source` of a configuration read from no file."""


@dataclass(frozen=True, slots=True, repr=False)
class RedisSettings:
    """One named Redis connection (`redis.<name>`); its repr hides the password.

    Example:
        >>> RedisSettings("default", "redis://:secret@cache:6379/0")
        RedisSettings('default', 'redis://***@cache:6379/0')
    """

    name: str
    url: str = DEFAULT_REDIS_URL

    def __repr__(self) -> str:
        return f"RedisSettings({self.name!r}, {redact(self.url)!r})"


@dataclass(frozen=True, slots=True, repr=False)
class QueueSettings:
    """The settings of one named queue (`queue.<name>`); its repr hides passwords.

    `store` holds the settings of the queue's driver (see `corequeue.config.DRIVER_REGISTRY`):
    `SQLiteSettings(path)`, `RedisQueueSettings(redis_name, url)`,
    `PostgresSettings(dsn, schema)` or `MemorySettings()`. Left out, it is the driver's
    default; a driver with a required key (postgres: `dsn`) needs it given. `periodic` holds
    the periodic jobs the configuration declares on the queue (`queue.<name>.periodic`),
    `limits` its flow-control limits (`queue.<name>.limits`).

    Example:
        >>> QueueSettings("emails", "sqlite", store=SQLiteSettings(Path("jobs.db"))).describe()
        'sqlite jobs.db'
    """

    name: str
    driver: str = DEFAULT_DRIVER
    parallelism: int = 1
    check_queue_length_interval: timedelta = DEFAULT_CHECK_INTERVAL
    shutdown_grace: timedelta = DEFAULT_SHUTDOWN_GRACE
    store: StoreSettings = field(default=None)  # type: ignore[assignment]  # set by __post_init__
    periodic: tuple[PeriodicSettings, ...] = ()
    limits: Limits | None = None

    def __post_init__(self) -> None:
        spec = DRIVER_REGISTRY.get(self.driver)
        if spec is None:
            raise InvalidOption(f"unknown driver {self.driver!r}; drivers: {', '.join(DRIVERS)}")
        if self.store is None:
            try:
                object.__setattr__(self, "store", spec.read({}, StoreContext()))
            except KeyProblem as exc:
                raise InvalidOption(f"driver {self.driver} needs store=: {exc}") from None
        elif not isinstance(self.store, spec.settings):
            raise InvalidOption(
                f"driver {self.driver} takes store={spec.settings.__name__}(...), "
                f"got {type(self.store).__name__}"
            )

    def describe(self) -> str:
        """Return where the queue's jobs live, with any password replaced by `***`."""
        return self.store.describe()

    def __repr__(self) -> str:
        return (
            f"QueueSettings({self.name!r}, {self.describe()!r}, parallelism={self.parallelism}, "
            f"check_queue_length_interval={self.check_queue_length_interval!r})"
        )


@dataclass(frozen=True, slots=True)
class Config:
    """A whole configuration: named queues, named Redis connections, log level, and its source.

    `queues` holds the configured queues; `queue("default")` answers even when `default` is
    not configured (SQLite `corequeue.db` next to the configuration file).

    Example:
        >>> from corequeue.config import parse_config
        >>> config = parse_config({"queue": {"myQueue": {"parallelism": 2}}})
        >>> config.queue("myQueue").parallelism
        2
        >>> config.names
        ('myQueue',)
    """

    queues: Mapping[str, QueueSettings] = field(default_factory=lambda: MappingProxyType({}))
    redis: Mapping[str, RedisSettings] = field(default_factory=lambda: MappingProxyType({}))
    log_level: str | None = None
    source: str = BUILT_IN
    base_dir: Path | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The configured queue names, in file order."""
        return tuple(self.queues)

    def queue(self, name: str) -> QueueSettings:
        """Return the settings of queue `name`; `default` always exists.

        Raises:
            InvalidOption: `name` is not configured; the message lists the configured names.
        """
        if name in self.queues:
            return self.queues[name]
        if name == DEFAULT_QUEUE:
            return default_queue(self.base_dir)
        configured = ", ".join(self.names) or "none"
        raise InvalidOption(
            f"unknown queue {name!r}: the configured queues are {configured} ({self.source}), "
            f"and 'default' always exists"
        )


def default_queue(base_dir: Path | None) -> QueueSettings:
    """The `default` queue when it is not configured: SQLite next to the configuration file."""
    store = SQLiteSettings.from_keys({}, StoreContext(base_dir=base_dir))
    return QueueSettings(DEFAULT_QUEUE, DEFAULT_DRIVER, store=store)
