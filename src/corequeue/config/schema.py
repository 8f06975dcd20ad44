"""The key schema: what each configuration key may hold, as small checks that say what is wrong.

A check takes the raw value (from YAML, TOML or an environment variable) and returns the typed
value or raises `Invalid` with what was expected and what was found. Bounds keep every value
usable by what is built from it: no NaN or infinity, no duration past what `timedelta` and the
event loop take, no text a store cannot hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from corequeue.errors import is_clean_text
from corequeue.redact import ambiguity, is_ambiguous, redact

DEFAULT_QUEUE: Final = "default"
DEFAULT_SQLITE_PATH: Final = "corequeue.db"
DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
DEFAULT_CHECK_INTERVAL: Final = timedelta(seconds=15)
DEFAULT_SHUTDOWN_GRACE: Final = timedelta(seconds=10)

MAX_PARALLELISM: Final = 10_000
"""The most jobs one worker may run at once on a queue."""

MAX_SECONDS: Final = 365 * 24 * 3600
"""The longest duration a `...Second` key takes: one year."""

MAX_TEXT_CHARS: Final = 1_000
"""The longest name, path or other text value."""

REDIS_SCHEMES: Final = frozenset(
    {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}
    | {"redis+sentinel", "rediss+sentinel"}
)


class Invalid(Exception):
    """A value does not fit its key; the message says what was expected and what was found."""


class KeyProblem(Exception):
    """A key of a driver's settings is missing or does not fit the others.

    Attributes:
        key: The key, relative to the queue (`dsn`, `redisName`).
        expected: What the key should hold.
    """

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"{key}: {expected}")
        self.key = key
        self.expected = expected


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key: its check, and whether an environment value is read as a number."""

    check: Callable[[object], Any]
    numeric: bool = False


def text(value: object) -> str:
    """A non-empty string a store can hold: no NUL, no lone surrogate, at most 1000 characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_CHARS:
        raise Invalid(
            f"expected a non-empty string of at most {MAX_TEXT_CHARS} characters, "
            f"got {shown(value)}"
        )
    if not is_clean_text(value):
        raise Invalid(
            f"expected a string without NUL characters or lone surrogates, got {shown(value)}"
        )
    return value


def one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    """Return a check that takes one of `choices`, in any case, as lower case."""

    def check(value: object) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise Invalid(f"expected one of {', '.join(choices)}, got {shown(value)}")
        return value.lower()

    return check


def whole(low: int, high: int) -> Callable[[object], int]:
    """Return a check that takes a whole number from `low` to `high` (a bool is not one)."""

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"expected a whole number from {low} to {high}, got {shown(value)}")
        return value

    return check


def seconds(*, positive: bool) -> Callable[[object], timedelta]:
    """Return a check that takes a finite number of seconds, at most a year, as a timedelta."""
    low = "more than 0" if positive else "at least 0"

    def check(value: object) -> timedelta:
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if (
            number is None
            or not math.isfinite(number)
            or not 0 <= number <= MAX_SECONDS
            or (positive and number == 0)
        ):
            raise Invalid(
                f"expected a number of seconds {low} and at most {MAX_SECONDS}, got {shown(value)}"
            )
        return timedelta(seconds=number)

    return check


def redis_url(value: object) -> str:
    """A Redis URL of a known scheme, its password encoded, its ports numbers; never quoted."""
    if not isinstance(value, str) or "://" not in value:
        # A malformed URL may still hold a password: name its kind, never its text.
        found = "a string without '://'" if isinstance(value, str) else kind(value)
        raise Invalid(f"expected a URL such as {DEFAULT_REDIS_URL}, got {found}")
    if is_ambiguous(value):
        raise Invalid(ambiguity("URL"))
    parts = urlsplit(value)
    if parts.scheme.lower() not in REDIS_SCHEMES:
        schemes = ", ".join(sorted(REDIS_SCHEMES))
        raise Invalid(f"expected a URL with a scheme among {schemes}, got {parts.scheme!r}")
    for host in parts.netloc.rpartition("@")[2].split(","):
        _check_port(host)
    return _no_nul(value, "URL")


def postgres_dsn(value: object) -> str:
    """A libpq URL or `key=value` string, its password encoded; never quoted."""
    if not isinstance(value, str) or not value.strip():
        found = "an empty string" if isinstance(value, str) else kind(value)
        raise Invalid(
            f"expected a PostgreSQL DSN such as postgresql://app@localhost/app, got {found}"
        )
    if is_ambiguous(value):
        raise Invalid(ambiguity("DSN"))
    return _no_nul(value, "DSN")


def kind(value: object) -> str:
    """Say what sort of value `value` is, without its content (which may be a secret)."""
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value)) or f"a value of type {type(value).__name__}"


def shown(value: object) -> str:
    """A short repr of `value` for a message (at most 60 characters), any password masked.

    A URL or DSN given under the wrong key is masked too: `got 'redis://***@cache/0'`.
    """
    text = repr(redact(value) if isinstance(value, str) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def unknown(keys: Mapping[str, Key]) -> str:
    """The message for a key that is not in `keys`."""
    return f"unknown key; expected one of {', '.join(keys)}"


def _check_port(host: str) -> None:
    port = host.rpartition("]")[2] if host.startswith("[") else host
    _, colon, number = port.rpartition(":")
    if colon and number and not (number.isdigit() and int(number) <= 65535):
        raise Invalid("expected a URL whose ports are numbers from 0 to 65535")


def _no_nul(value: str, what: str) -> str:
    if not is_clean_text(value):
        raise Invalid(f"expected a {what} without NUL characters or lone surrogates")
    return value
