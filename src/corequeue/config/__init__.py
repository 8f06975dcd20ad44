"""Configuration: YAML / TOML files and environment variables -> typed, frozen, validated settings.

The file format is the Go service's, keys unchanged, plus a `driver` per queue:

    queue:
      default:  {redisName: default, parallelism: 3, checkQueueLengthIntervalSecond: 15}
      myQueue:  {driver: sqlite, path: jobs.db, parallelism: 1}
      reports:
        periodic: [{name: nightly, schedule: "0 3 * * *", job: app.NightlyReport}]
    redis:
      default:  {url: redis://localhost:6379/0}

Environment variables override the file: `COREQUEUE_<SECTION>__<NAME>__<KEY>=value`, for example
`COREQUEUE_QUEUE__MYQUEUE__PARALLELISM=4` (see docs/configuration.md for the exact rule). Every
mistake raises `ConfigError` naming the file and line (or variable), the key and what is
expected. Secrets (passwords in URLs and DSNs) never appear in a repr or an error message.

The package reads top down: `files` (finding and reading files), `environment` (overrides),
`schema` (what each key may hold), `drivers` (the registry: each driver's keys, settings class
and builder), `schedules` (periodic jobs of a queue), `settings` (the result) and `parsing`
(from raw values to the result).
"""

from corequeue.config.drivers import (
    DRIVER_REGISTRY,
    DRIVERS,
    DriverSpec,
    MemorySettings,
    PostgresSettings,
    RedisQueueSettings,
    SQLiteSettings,
    StoreContext,
    StoreSettings,
)
from corequeue.config.environment import ENV_PREFIX
from corequeue.config.files import (
    CONFIG_VARIABLE,
    DEFAULT_FILES,
    find_config_file,
    parse_config_text,
    read_config_file,
)
from corequeue.config.parsing import load_config, parse_config
from corequeue.config.schedules import PeriodicSettings
from corequeue.config.schema import (
    DEFAULT_QUEUE,
    DEFAULT_REDIS_URL,
    DEFAULT_SQLITE_PATH,
    LOG_LEVELS,
    MAX_PARALLELISM,
    MAX_SECONDS,
)
from corequeue.config.settings import BUILT_IN, Config, QueueSettings, RedisSettings
from corequeue.errors import ConfigError

__all__ = [
    "BUILT_IN",
    "CONFIG_VARIABLE",
    "DEFAULT_FILES",
    "DEFAULT_QUEUE",
    "DEFAULT_REDIS_URL",
    "DEFAULT_SQLITE_PATH",
    "DRIVERS",
    "DRIVER_REGISTRY",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "MAX_PARALLELISM",
    "MAX_SECONDS",
    "Config",
    "ConfigError",
    "DriverSpec",
    "MemorySettings",
    "PeriodicSettings",
    "PostgresSettings",
    "QueueSettings",
    "RedisQueueSettings",
    "RedisSettings",
    "SQLiteSettings",
    "StoreContext",
    "StoreSettings",
    "find_config_file",
    "load_config",
    "parse_config",
    "parse_config_text",
    "read_config_file",
]
