"""Configuration: YAML / TOML files and environment variables -> typed, frozen, validated settings.

The file format is the Go service's, keys unchanged, plus a `driver` per queue:

    queue:
      default:  {redisName: default, parallelism: 3, checkQueueLengthIntervalSecond: 15}
      myQueue:  {driver: sqlite, path: jobs.db, parallelism: 1}
    redis:
      default:  {url: redis://localhost:6379/0}

Environment variables override the file: `COREQUEUE_<SECTION>__<NAME>__<KEY>=value`, for example
`COREQUEUE_QUEUE__MYQUEUE__PARALLELISM=4` (see docs/configuration.md for the exact rule). Every
mistake raises `ConfigError` naming the file (or variable), the key and what is expected.
Secrets (passwords in URLs and DSNs) never appear in a repr or an error message.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, cast, get_args

import yaml

from corequeue.errors import InvalidOption
from corequeue.redact import ambiguity, is_ambiguous, redact

DriverName: TypeAlias = Literal["memory", "sqlite", "redis", "postgres"]
"""The drivers a configuration can name."""

DRIVERS: Final[tuple[str, ...]] = get_args(DriverName)

CONFIG_VARIABLE: Final = "COREQUEUE_CONFIG"
"""The environment variable naming the configuration file when `--config` is not given."""

ENV_PREFIX: Final = "COREQUEUE_"
"""Prefix of the environment variables that override single keys (with `__` separators)."""

DEFAULT_FILES: Final = ("corequeue.yaml", "corequeue.yml", "corequeue.toml")
"""Files looked for in the working directory when no file is named."""

BUILT_IN: Final = "built-in default"
"""The `source` of a configuration read from no file."""

DEFAULT_QUEUE: Final = "default"
DEFAULT_SQLITE_PATH: Final = "corequeue.db"
DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


class ConfigError(InvalidOption):
    """A configuration file or variable is unreadable or holds a value that cannot be used.

    Attributes:
        source: The file or environment variable the value came from.
        key: The dotted key, e.g. `queue.myQueue.parallelism` (empty for the whole file).
        expected: What the key should hold, and what it held instead.
    """

    def __init__(self, source: str, key: str, expected: str) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {expected}")


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

    Example:
        >>> QueueSettings("emails", "sqlite", path=Path("jobs.db")).describe()
        'sqlite jobs.db'
    """

    name: str
    driver: DriverName = "sqlite"
    parallelism: int = 1
    check_queue_length_interval: timedelta = timedelta(seconds=15)
    shutdown_grace: timedelta = timedelta(seconds=10)
    path: Path = Path(DEFAULT_SQLITE_PATH)
    redis_name: str | None = None
    redis_url: str | None = None
    dsn: str | None = None
    schema: str = "corequeue"

    def describe(self) -> str:
        """Return where the queue's jobs live, with any password replaced by `***`."""
        if self.driver == "sqlite":
            return f"sqlite {self.path}"
        if self.driver == "redis":
            return f"redis {redact(self.redis_url or '')} (redisName {self.redis_name})"
        if self.driver == "postgres":
            return f"postgres {redact(self.dsn or '')} (schema {self.schema})"
        return "memory"

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
            return QueueSettings(DEFAULT_QUEUE, path=_resolve(DEFAULT_SQLITE_PATH, self.base_dir))
        configured = ", ".join(self.names) or "none"
        raise InvalidOption(
            f"unknown queue {name!r}: the configured queues are {configured} ({self.source}), "
            f"and 'default' always exists"
        )


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
        ConfigError: The file is missing, unreadable, or holds a bad value.

    Example:
        >>> config = load_config("corequeue.yaml")  # doctest: +SKIP
        >>> config.queue("default").parallelism  # doctest: +SKIP
        3
    """
    environ = os.environ if environ is None else environ
    found = find_config_file(path, environ=environ, cwd=cwd)
    if found is None:
        return parse_config({}, source=BUILT_IN, environ=environ)
    return parse_config(
        read_config_file(found), source=str(found), environ=environ, base_dir=found.parent
    )


def find_config_file(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """Return the configuration file `load_config` would read, or None for the built-in default.

    Raises:
        ConfigError: A named file (`path` or `COREQUEUE_CONFIG`) does not exist.
    """
    environ = os.environ if environ is None else environ
    if path is not None or environ.get(CONFIG_VARIABLE):
        source = "--config" if path is not None else CONFIG_VARIABLE
        named = Path(path if path is not None else environ[CONFIG_VARIABLE])
        if not named.is_file():
            raise ConfigError(str(named), "", f"no such file (named by {source})")
        return named
    folder = cwd or Path.cwd()
    return next((folder / name for name in DEFAULT_FILES if (folder / name).is_file()), None)


def read_config_file(path: Path) -> Mapping[str, Any]:
    """Return the raw mapping in a YAML (or JSON) or TOML file, by its suffix.

    Raises:
        ConfigError: The file cannot be read or parsed, or does not hold a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot be read: {exc}") from None
    return parse_config_text(text, source=str(path), toml=path.suffix.lower() == ".toml")


def parse_config_text(text: str, *, source: str = "<text>", toml: bool = False) -> dict[str, Any]:
    """Return the raw mapping in YAML (a superset of JSON) or TOML text.

    Raises:
        ConfigError: The text does not parse or does not hold a mapping.
    """
    try:
        data = tomllib.loads(text) if toml else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if toml else "YAML or JSON"
        raise ConfigError(source, "", f"expected valid {kind}: {_syntax_error(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"expected a mapping at the top, got {_kind(data)}")
    return data


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<mapping>",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Config:
    """Validate a raw mapping (and overrides from `environ`, if given) into a Config.

    Args:
        data: The parsed file, e.g. `{"queue": {"default": {"parallelism": 3}}}`.
        source: The file it came from, named in error messages.
        environ: Environment variables whose `COREQUEUE_..__..` entries override keys.
        base_dir: Folder against which relative SQLite paths are resolved.

    Raises:
        ConfigError: Naming the file or variable, the key and what is expected.

    Example:
        >>> parse_config({"queue": {"q": {"parallelism": -1}}}, source="app.yaml")
        Traceback (most recent call last):
        ...
        corequeue.config.ConfigError: app.yaml: queue.q.parallelism: expected a whole number \
of at least 1, got -1
    """
    raw = _Raw(source)
    raw.load(data)
    if environ is not None:
        raw.override(environ)
    redis = {name: _redis_settings(raw, name) for name in raw.sections["redis"]}
    queues = {name: _queue_settings(raw, name, redis, base_dir) for name in raw.sections["queue"]}
    if not queues:
        queues[DEFAULT_QUEUE] = QueueSettings(
            DEFAULT_QUEUE, path=_resolve(DEFAULT_SQLITE_PATH, base_dir)
        )
    return Config(
        queues=MappingProxyType(queues),
        redis=MappingProxyType(redis),
        log_level=_log_level(raw),
        source=source,
        base_dir=base_dir,
    )


# --- keys ------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A value does not fit its key; the message says what was expected."""


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a non-empty string, got {_shown(value)}")
    return value


def _driver(value: object) -> str:
    if not isinstance(value, str) or value not in DRIVERS:
        raise _Invalid(f"expected one of {', '.join(DRIVERS)}, got {_shown(value)}")
    return value


def _at_least_one(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"expected a whole number of at least 1, got {_shown(value)}")
    return value


def _seconds(minimum: float, inclusive: bool) -> Callable[[object], timedelta]:
    bound = f"{'at least' if inclusive else 'more than'} {minimum:g}"

    def check(value: object) -> timedelta:
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or number < minimum or (number == minimum and not inclusive):
            raise _Invalid(f"expected a number of seconds {bound}, got {_shown(value)}")
        return timedelta(seconds=number)

    return check


def _secret_url(value: object) -> str:
    if not isinstance(value, str) or "://" not in value:
        # A malformed URL may still hold a password: name its kind, never its text.
        found = "a string without '://'" if isinstance(value, str) else _shown(value)
        raise _Invalid(f"expected a URL such as {DEFAULT_REDIS_URL}, got {found}")
    if is_ambiguous(value):
        raise _Invalid(ambiguity("URL"))
    return value


def _secret_dsn(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(
            f"expected a PostgreSQL DSN such as postgresql://app@localhost/app, got {_shown(value)}"
        )
    if is_ambiguous(value):
        raise _Invalid(ambiguity("DSN"))
    return value


@dataclass(frozen=True, slots=True)
class _Key:
    check: Callable[[object], Any]
    numeric: bool = False
    drivers: tuple[str, ...] = DRIVERS


_QUEUE_KEYS: Final = {
    "driver": _Key(_driver),
    "redisName": _Key(_text, drivers=("redis",)),
    "parallelism": _Key(_at_least_one, numeric=True),
    "checkQueueLengthIntervalSecond": _Key(_seconds(0, inclusive=False), numeric=True),
    "shutdownGraceSecond": _Key(_seconds(0, inclusive=True), numeric=True),
    "path": _Key(_text, drivers=("sqlite",)),
    "dsn": _Key(_secret_dsn, drivers=("postgres",)),
    "schema": _Key(_text, drivers=("postgres",)),
}
_REDIS_KEYS: Final = {"url": _Key(_secret_url)}
_LOG_KEYS: Final = {"level": _Key(_text)}
_SECTIONS: Final = {"queue": _QUEUE_KEYS, "redis": _REDIS_KEYS}


class _Raw:
    """The raw mapping being validated, with the source of every value (file or variable)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sections: dict[str, dict[str, dict[str, Any]]] = {"queue": {}, "redis": {}}
        self.log: dict[str, Any] = {}
        self.origins: dict[str, str] = {}

    def error(self, key: str, expected: str) -> ConfigError:
        return ConfigError(self.origins.get(key, self.source), key, expected)

    def load(self, data: Mapping[str, Any]) -> None:
        for top, value in data.items():
            if top not in (*_SECTIONS, "log"):
                raise self.error(str(top), "unknown key; expected queue, redis or log")
            if not isinstance(value, dict):
                raise self.error(top, f"expected a mapping, got {_kind(value)}")
            if top == "log":
                self.log = _known_keys(self, "log", value, _LOG_KEYS)
                continue
            for name, entries in value.items():
                key = f"{top}.{name}"
                if not isinstance(entries, dict):
                    raise self.error(key, f"expected a mapping of settings, got {_kind(entries)}")
                self.sections[top][str(name)] = _known_keys(self, key, entries, _SECTIONS[top])

    def override(self, environ: Mapping[str, str]) -> None:
        for variable in sorted(environ):
            if variable.startswith(ENV_PREFIX) and "__" in variable:
                self._override_one(variable, environ[variable])

    def _override_one(self, variable: str, text: str) -> None:
        parts = variable[len(ENV_PREFIX) :].split("__")
        section = parts[0].lower()
        if section == "log" and len(parts) == 2:
            self._set(variable, "log", self.log, _LOG_KEYS, parts[1], text)
            return
        if section not in _SECTIONS or len(parts) != 3 or not parts[1]:
            raise ConfigError(
                _variable(variable),
                "",
                "expected COREQUEUE_QUEUE__<NAME>__<KEY>, COREQUEUE_REDIS__<NAME>__<KEY> "
                "or COREQUEUE_LOG__LEVEL",
            )
        named = self.sections[section]
        name = _matching(variable, parts[1], named)
        entries = named.setdefault(name, {})
        self._set(variable, f"{section}.{name}", entries, _SECTIONS[section], parts[2], text)

    def _set(
        self,
        variable: str,
        prefix: str,
        entries: dict[str, Any],
        keys: Mapping[str, _Key],
        written: str,
        text: str,
    ) -> None:
        folded = {_fold(known): known for known in keys}
        if _fold(written) not in folded:
            raise ConfigError(_variable(variable), f"{prefix}.{written}", _unknown(keys))
        key = folded[_fold(written)]
        entries[key] = _number(text) if keys[key].numeric else text
        self.origins[f"{prefix}.{key}"] = _variable(variable)


def _known_keys(
    raw: _Raw, prefix: str, entries: Mapping[Any, Any], keys: Mapping[str, _Key]
) -> dict[str, Any]:
    for key in entries:
        if key not in keys:
            raise raw.error(f"{prefix}.{key}", _unknown(keys))
    return dict(entries)


def _matching(variable: str, written: str, named: Mapping[str, Any]) -> str:
    """Return the configured name `written` (any case) refers to, or `written` lowercased."""
    candidates = [name for name in named if name.lower() == written.lower()]
    if len(candidates) > 1:
        raise ConfigError(
            _variable(variable),
            "",
            f"matches several names that differ only in case: {', '.join(candidates)}",
        )
    return candidates[0] if candidates else written.lower()


def _queue_settings(
    raw: _Raw, name: str, redis: Mapping[str, RedisSettings], base_dir: Path | None
) -> QueueSettings:
    prefix = f"queue.{name}"
    entries = raw.sections["queue"][name]
    values = {key: _checked(raw, prefix, _QUEUE_KEYS, key, value) for key, value in entries.items()}
    driver: DriverName = values.get("driver") or ("redis" if "redisName" in values else "sqlite")
    for key in values:
        if driver not in _QUEUE_KEYS[key].drivers:
            allowed = " or ".join(_QUEUE_KEYS[key].drivers)
            raise raw.error(f"{prefix}.{key}", f"applies to driver {allowed} only, not {driver}")
    redis_name = values.get("redisName", DEFAULT_QUEUE) if driver == "redis" else None
    if driver == "postgres" and "dsn" not in values:
        raise raw.error(f"{prefix}.dsn", "expected a PostgreSQL DSN: driver postgres needs one")
    return QueueSettings(
        name,
        driver,
        parallelism=values.get("parallelism", 1),
        check_queue_length_interval=values.get(
            "checkQueueLengthIntervalSecond", timedelta(seconds=15)
        ),
        shutdown_grace=values.get("shutdownGraceSecond", timedelta(seconds=10)),
        path=_resolve(values.get("path", DEFAULT_SQLITE_PATH), base_dir),
        redis_name=redis_name,
        redis_url=_redis_url(raw, prefix, redis_name, redis),
        dsn=values.get("dsn"),
        schema=values.get("schema", "corequeue"),
    )


def _redis_url(
    raw: _Raw, prefix: str, redis_name: str | None, redis: Mapping[str, RedisSettings]
) -> str | None:
    if redis_name is None:
        return None
    if redis_name in redis:
        return redis[redis_name].url
    if redis_name == DEFAULT_QUEUE:  # as in Go, the `default` connection needs no entry
        return DEFAULT_REDIS_URL
    configured = ", ".join(redis) or "none"
    raise raw.error(
        f"{prefix}.redisName",
        f"expected the name of a redis.<name> entry (configured: {configured}), got {redis_name!r}",
    )


def _redis_settings(raw: _Raw, name: str) -> RedisSettings:
    entries = raw.sections["redis"][name]
    if "url" not in entries:
        raise raw.error(f"redis.{name}.url", f"expected a URL such as {DEFAULT_REDIS_URL}")
    return RedisSettings(name, _checked(raw, f"redis.{name}", _REDIS_KEYS, "url", entries["url"]))


def _log_level(raw: _Raw) -> str | None:
    if "level" not in raw.log:
        return None
    level = _checked(raw, "log", _LOG_KEYS, "level", raw.log["level"]).lower()
    if level not in LOG_LEVELS:
        raise raw.error("log.level", f"expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return cast(str, level)


def _checked(raw: _Raw, prefix: str, keys: Mapping[str, _Key], key: str, value: object) -> Any:
    try:
        return keys[key].check(value)
    except _Invalid as exc:
        raise raw.error(f"{prefix}.{key}", str(exc)) from None


# --- small helpers ---------------------------------------------------------------------------


def _resolve(path: str | Path, base_dir: Path | None) -> Path:
    path = Path(path).expanduser()
    return path if base_dir is None or path.is_absolute() else base_dir / path


def _number(text: str) -> int | float | str:
    """Return the number an environment value spells, or the text for the check to refuse."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _variable(name: str) -> str:
    return f"environment variable {name}"


def _fold(key: str) -> str:
    return key.replace("_", "").lower()


def _unknown(keys: Mapping[str, _Key]) -> str:
    return f"unknown key; expected one of {', '.join(keys)}"


def _kind(value: object) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value)) or _shown(value)


def _shown(value: object) -> str:
    return repr(value)


def _syntax_error(exc: Exception) -> str:
    """Say what is wrong and where, without quoting the line: it may hold a password."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.YAMLError):
        return type(exc).__name__
    return " ".join(str(exc).split())  # tomllib names the line and column, never the text
