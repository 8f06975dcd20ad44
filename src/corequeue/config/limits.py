"""`queue.<name>.limits`: the flow-control limits a configuration gives a queue.

queue:
  emails:
    limits: {concurrency: 20, groupConcurrency: 2, rate: "100/s", groupRate: "5/m"}
"""

from __future__ import annotations

from typing import Any, Final

from corequeue.config.schema import Invalid, KeyProblem, shown
from corequeue.errors import InvalidOption
from corequeue.limits import MAX_LIMIT, Limits, Rate

LIMIT_KEYS: Final = ("concurrency", "groupConcurrency", "rate", "groupRate")
"""The keys of `queue.<name>.limits`."""


def limits_mapping(value: object) -> dict[str, Any]:
    """The check of `queue.<name>.limits` as a whole: a mapping (a file's, not a variable's)."""
    if not isinstance(value, dict):
        raise Invalid(
            f'expected a mapping such as {{concurrency: 10, rate: "100/s"}}, got {shown(value)}'
        )
    return value


def read_limits(value: object) -> Limits:
    """Return the limits of `queue.<name>.limits`, each key checked.

    Raises:
        KeyProblem: Naming the key relative to the queue (`limits.rate`).
    """
    try:
        entries = limits_mapping(value)
    except Invalid as exc:
        raise KeyProblem("limits", str(exc)) from None
    for key in entries:
        if key not in LIMIT_KEYS:
            raise KeyProblem(f"limits.{key}", f"expected one of {', '.join(LIMIT_KEYS)}")
    options: dict[str, Any] = {}
    for key, option in (("concurrency", "concurrency"), ("groupConcurrency", "group_concurrency")):
        if key in entries:
            options[option] = _count(key, entries[key])
    for key, option in (("rate", "rate"), ("groupRate", "group_rate")):
        if key in entries:
            options[option] = _rate(key, entries[key])
    return Limits(**options)


def _count(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise KeyProblem(
            f"limits.{key}", f"expected a whole number from 1 to {MAX_LIMIT}, got {shown(value)}"
        )
    return value


def _rate(key: str, value: object) -> Rate:
    try:
        return Rate.parse(value)  # type: ignore[arg-type]  # parse refuses non-strings
    except InvalidOption as exc:
        raise KeyProblem(f"limits.{key}", str(exc)) from None
