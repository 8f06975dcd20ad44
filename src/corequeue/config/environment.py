"""Environment overrides: `COREQUEUE_<SECTION>__<NAME>__<KEY>=value` sets one key.

Only variables that start with `COREQUEUE_` and hold `__` are overrides. The section is `QUEUE`
or `REDIS` followed by a name and a key, or `LOG` followed by `LEVEL`; names and keys match in
any case, keys also without their underscores (`CHECK_QUEUE_LENGTH_INTERVAL_SECOND`). Values are
text, read as numbers for number keys. Every mistake is a ConfigError naming the variable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from corequeue.errors import ConfigError

ENV_PREFIX: Final = "COREQUEUE_"
"""Prefix of the environment variables that override single keys (with `__` separators)."""

NAMED_SECTIONS: Final = ("queue", "redis")
"""The sections whose entries are named (`queue.<name>`, `redis.<name>`)."""


@dataclass(frozen=True, slots=True)
class Override:
    """One variable's override, not yet matched to a configured name or key.

    Attributes:
        variable: The variable's name.
        section: `queue`, `redis` or `log`.
        name: The entry's name as written (None for `log`).
        key: The key as written (any case, maybe with underscores).
        text: The value.
    """

    variable: str
    section: str
    name: str | None
    key: str
    text: str

    @property
    def source(self) -> str:
        """Where a value came from, as error messages name it."""
        return variable_source(self.variable)


def overrides(environ: Mapping[str, str]) -> Iterator[Override]:
    """Yield the override of every `COREQUEUE_..__..` variable, in name order.

    Raises:
        ConfigError: A variable of that form names no section, or not a name and a key.
    """
    for variable in sorted(environ):
        if variable.startswith(ENV_PREFIX) and "__" in variable:
            yield _override(variable, environ[variable])


def _override(variable: str, text: str) -> Override:
    parts = variable[len(ENV_PREFIX) :].split("__")
    section = parts[0].lower()
    if section == "log" and len(parts) == 2 and parts[1]:
        return Override(variable, section, None, parts[1], text)
    if section not in NAMED_SECTIONS or len(parts) != 3 or not parts[1] or not parts[2]:
        raise ConfigError(
            variable_source(variable),
            "",
            "expected COREQUEUE_QUEUE__<NAME>__<KEY>, COREQUEUE_REDIS__<NAME>__<KEY> "
            "or COREQUEUE_LOG__LEVEL",
        )
    return Override(variable, section, parts[1], parts[2], text)


def matching_name(override: Override, names: Iterator[str] | list[str]) -> str:
    """Return the configured name the override's name (any case) refers to, else it lowercased.

    Raises:
        ConfigError: Several configured names differ only in case from it.
    """
    written = override.name or ""
    candidates = [name for name in names if name.lower() == written.lower()]
    if len(candidates) > 1:
        raise ConfigError(
            override.source,
            "",
            f"matches several names that differ only in case: {', '.join(candidates)}",
        )
    return candidates[0] if candidates else written.lower()


def matching_key(written: str, keys: Iterator[str] | list[str]) -> str | None:
    """Return the key `written` refers to, ignoring case and underscores, or None."""
    folded = {fold(known): known for known in keys}
    return folded.get(fold(written))


def number(text: str) -> int | float | str:
    """Return the number an environment value spells, or the text for the check to refuse."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def fold(key: str) -> str:
    """A key without underscores, in lower case: how variables and keys are matched."""
    return key.replace("_", "").lower()


def variable_source(name: str) -> str:
    """How error messages name an environment variable."""
    return f"environment variable {name}"
