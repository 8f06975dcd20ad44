"""From raw mappings and environment variables to a validated Config.

`_Raw` holds what was read, section by section, with the source of every value (`file:line`
or the variable); each value is then checked against the key schema and the driver registry,
and any mistake becomes a ConfigError naming that source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from corequeue.config.drivers import (
    DRIVER_REGISTRY,
    StoreContext,
    driver_name,
    drivers_with,
    implied_driver,
)
from corequeue.config.environment import (
    Override,
    matching_key,
    matching_name,
    number,
    overrides,
)
from corequeue.config.files import Lines, find_config_file, key_path, read_with_lines
from corequeue.config.limits import limits_mapping, read_limits
from corequeue.config.schedules import read_schedules, schedule_list
from corequeue.config.schema import (
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_QUEUE,
    DEFAULT_SHUTDOWN_GRACE,
    LOG_LEVELS,
    MAX_PARALLELISM,
    Invalid,
    Key,
    KeyProblem,
    one_of,
    redis_url,
    seconds,
    shown,
    unknown,
    whole,
)
from corequeue.config.settings import BUILT_IN, Config, QueueSettings, RedisSettings, default_queue
from corequeue.errors import ConfigError

COMMON_KEYS: Final = {
    "driver": Key(driver_name),
    "parallelism": Key(whole(1, MAX_PARALLELISM), numeric=True),
    "checkQueueLengthIntervalSecond": Key(seconds(positive=True), numeric=True),
    "shutdownGraceSecond": Key(seconds(positive=False), numeric=True),
    "periodic": Key(schedule_list),
    "limits": Key(limits_mapping),
}
"""The keys every queue takes, whatever its driver."""

QUEUE_KEYS: Final = {
    **COMMON_KEYS,
    **{key: spec_key for spec in DRIVER_REGISTRY.values() for key, spec_key in spec.keys.items()},
}
"""Every key of `queue.<name>`: the common ones, then each driver's own."""

REDIS_KEYS: Final = {"url": Key(redis_url)}
LOG_KEYS: Final = {"level": Key(one_of(LOG_LEVELS))}
_SECTIONS: Final = {"queue": QUEUE_KEYS, "redis": REDIS_KEYS}
_MAX_NAME_CHARS: Final = 200


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Find, read and validate the configuration, then apply environment overrides.

    Lookup order: `path`, else the file named by `COREQUEUE_CONFIG`, else `corequeue.yaml`,
    `corequeue.yml` or `corequeue.toml` in `cwd`, else the built-in default (one `default` queue
    on SQLite). Relative SQLite paths are resolved against the file's folder.

    Args:
        path: The file named on the command line (`--config`), if any.
        environ: The environment to read (default: `os.environ`).
        cwd: Where to look for the default files (default: the working directory).

    Raises:
        ConfigError: The file is missing, unreadable, or holds a bad value; the message names
            `file:line` (or the variable), the key, and what was expected.

    Example:
        >>> config = load_config("corequeue.yaml")  # doctest: +SKIP
        >>> config.queue("default").parallelism  # doctest: +SKIP
        3
    """
    environ = os.environ if environ is None else environ
    found = find_config_file(path, environ=environ, cwd=cwd)
    if found is None:
        return parse_config({}, source=BUILT_IN, environ=environ)
    data, lines = read_with_lines(found)
    return parse_config(
        data, source=str(found), environ=environ, base_dir=found.parent, lines=lines
    )


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<mapping>",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    lines: Lines | None = None,
) -> Config:
    """Validate a raw mapping (and overrides from `environ`, if given) into a Config.

    Args:
        data: The parsed file, e.g. `{"queue": {"default": {"parallelism": 3}}}`.
        source: The file it came from, named in error messages.
        environ: Environment variables whose `COREQUEUE_..__..` entries override keys.
        base_dir: Folder against which relative SQLite paths are resolved.
        lines: The line of each key path in the file, so errors name `file:line`.

    Raises:
        ConfigError: Naming the file (and line) or variable, the key and what is expected.

    Example:
        >>> parse_config({"queue": {"q": {"parallelism": -1}}}, source="app.yaml")
        Traceback (most recent call last):
        ...
        corequeue.errors.ConfigError: app.yaml: queue.q.parallelism: expected a whole number \
from 1 to 10000, got -1
    """
    raw = _Raw(source, lines or {})
    raw.load(data)
    for override in overrides(environ or {}):
        raw.override(override)
    redis = {name: _redis_settings(raw, name) for name in raw.sections["redis"]}
    context = StoreContext(base_dir, {name: entry.url for name, entry in redis.items()})
    queues = {name: _queue_settings(raw, name, context) for name in raw.sections["queue"]}
    if not queues:
        queues[DEFAULT_QUEUE] = default_queue(base_dir)
    return Config(
        queues=MappingProxyType(queues),
        redis=MappingProxyType(redis),
        log_level=_log_level(raw),
        source=source,
        base_dir=base_dir,
    )


class _Raw:
    """The raw mapping being validated, with the source of every value (file:line or variable)."""

    def __init__(self, source: str, lines: Lines) -> None:
        self.source = source
        self.lines = lines
        self.sections: dict[str, dict[str, dict[str, Any]]] = {"queue": {}, "redis": {}}
        self.log: dict[str, Any] = {}
        self.variables: dict[str, str] = {}

    def error(self, key: str, expected: str) -> ConfigError:
        """A ConfigError about `key`, naming where its value came from."""
        return ConfigError(self.origin(key), key, expected)

    def origin(self, key: str) -> str:
        """The variable that set `key`, else `file:line` of it or its nearest parent."""
        if key in self.variables:
            return self.variables[key]
        path = key_path(key)
        while path:
            if path in self.lines:
                return f"{self.source}:{self.lines[path]}"
            path = path[:-1]
        return self.source

    def checked(self, prefix: str, keys: Mapping[str, Key], key: str, value: object) -> Any:
        """Return `value` checked by `keys[key]`; raise ConfigError naming `prefix.key`."""
        try:
            return keys[key].check(value)
        except Invalid as exc:
            raise self.error(f"{prefix}.{key}", str(exc)) from None

    def load(self, data: Mapping[Any, Any]) -> None:
        """Take in the sections of a parsed file, refusing unknown keys."""
        for top, value in data.items():
            if top not in (*_SECTIONS, "log"):
                raise self.error(str(top), "unknown key; expected queue, redis or log")
            if not isinstance(value, dict):
                raise self.error(str(top), f"expected a mapping, got {_kind(value)}")
            if top == "log":
                self.log = self._known("log", value, LOG_KEYS)
                continue
            for name, entries in value.items():
                key = f"{top}.{name}"
                if not isinstance(entries, dict):
                    raise self.error(key, f"expected a mapping of settings, got {_kind(entries)}")
                checked = _name(self, top, name)
                self.sections[top][checked] = self._known(key, entries, _SECTIONS[top])

    def override(self, override: Override) -> None:
        """Apply one environment override; an error names its variable."""
        if override.section == "log":
            prefix, entries, keys = "log", self.log, LOG_KEYS
        else:
            named = self.sections[override.section]
            name = matching_name(override, list(named))
            prefix, entries, keys = (
                f"{override.section}.{name}",
                named.setdefault(name, {}),
                (_SECTIONS[override.section]),
            )
        key = matching_key(override.key, list(keys))
        if key is None:
            raise ConfigError(override.source, f"{prefix}.{override.key}", unknown(keys))
        entries[key] = number(override.text) if keys[key].numeric else override.text
        self.variables[f"{prefix}.{key}"] = override.source

    def _known(
        self, prefix: str, entries: Mapping[Any, Any], keys: Mapping[str, Key]
    ) -> dict[str, Any]:
        for key in entries:
            if key not in keys:
                raise self.error(f"{prefix}.{key}", unknown(keys))
        return dict(entries)


def _name(raw: _Raw, section: str, name: object) -> str:
    """Return an entry's name (`queue.<name>`) as text, refusing what no store can hold."""
    text = str(name)
    if not text.strip() or len(text) > _MAX_NAME_CHARS or "\x00" in text:
        raise raw.error(
            f"{section}.{text}",
            f"expected a name of 1 to {_MAX_NAME_CHARS} characters without NUL, got {shown(name)}",
        )
    return text


def _queue_settings(raw: _Raw, name: str, context: StoreContext) -> QueueSettings:
    prefix = f"queue.{name}"
    entries = raw.sections["queue"][name]
    values = {key: raw.checked(prefix, QUEUE_KEYS, key, value) for key, value in entries.items()}
    driver = values.get("driver") or implied_driver(values)
    spec = DRIVER_REGISTRY[driver]
    for key in values:
        if key not in COMMON_KEYS and key not in spec.keys:
            allowed = " or ".join(drivers_with(key))
            raise raw.error(f"{prefix}.{key}", f"applies to driver {allowed} only, not {driver}")
    try:
        store = spec.read({key: values[key] for key in spec.keys if key in values}, context)
        periodic = read_schedules(values["periodic"]) if "periodic" in values else ()
        limits = read_limits(values["limits"]) if "limits" in values else None
    except KeyProblem as exc:
        raise raw.error(f"{prefix}.{exc.key}", exc.expected) from None
    return QueueSettings(
        name,
        driver,
        parallelism=values.get("parallelism", 1),
        check_queue_length_interval=values.get(
            "checkQueueLengthIntervalSecond", DEFAULT_CHECK_INTERVAL
        ),
        shutdown_grace=values.get("shutdownGraceSecond", DEFAULT_SHUTDOWN_GRACE),
        store=store,
        periodic=periodic,
        limits=limits,
    )


def _redis_settings(raw: _Raw, name: str) -> RedisSettings:
    entries = raw.sections["redis"][name]
    if "url" not in entries:
        raise raw.error(f"redis.{name}.url", "expected a URL such as redis://localhost:6379/0")
    return RedisSettings(name, raw.checked(f"redis.{name}", REDIS_KEYS, "url", entries["url"]))


def _log_level(raw: _Raw) -> str | None:
    if "level" not in raw.log:
        return None
    level: str = raw.checked("log", LOG_KEYS, "level", raw.log["level"])
    return level


def _kind(value: object) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value)) or shown(value)
