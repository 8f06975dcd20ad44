"""Periodic jobs declared in the configuration: `queue.<name>.periodic`, a list of schedules.

Each entry names a job type and, optionally, its fixed payload:

    queue:
      reports:
        periodic:
          - {name: nightly, schedule: "0 3 * * *", job: app.NightlyReport, tz: Europe/Berlin}
          - {name: heartbeat, everySecond: 30, job: app.Heartbeat, payload: {source: cron}}

Every entry is checked here with the rules `queue.periodic()` applies, and a mistake is a
`KeyProblem` naming the entry's key (`periodic[1].everySecond`), which the parser turns into a
one-line ConfigError with the file and line.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from corequeue.codec import JsonCodec
from corequeue.config.schema import Invalid, KeyProblem, kind, one_of, seconds, shown, text
from corequeue.errors import EncodeError, InvalidOption
from corequeue.job import ValueJob, job_from
from corequeue.periodic.registry import MAX_NAME_CHARS, MISFIRE_POLICIES, check_name
from corequeue.periodic.schedule import parse_schedule, zone_named

SCHEDULE_KEYS: Final = ("name", "schedule", "everySecond", "job", "payload", "tz", "misfire")
"""The keys of one entry of `queue.<name>.periodic`."""

MAX_SCHEDULES: Final = 1_000
"""The most schedules one queue's configuration declares."""

MAX_PAYLOAD_DEPTH: Final = 32
"""The deepest nesting of lists and mappings in a configured payload."""

_CODEC: Final = JsonCodec()


@dataclass(frozen=True, slots=True)
class PeriodicSettings:
    """One periodic job of the configuration: a job type, its fixed payload, and when.

    Example:
        >>> entry = PeriodicSettings("nightly", "app.NightlyReport", "0 3 * * *")
        >>> entry.job()
        ValueJob(type='app.NightlyReport', data={})
    """

    name: str
    job_type: str
    schedule: str | timedelta
    payload: Any = field(default_factory=dict)
    tz: str = "UTC"
    misfire: str = "skip"

    def job(self) -> ValueJob:
        """Return the job each slot dispatches: the job type with the payload (`{}` if none)."""
        return job_from(self.payload, type_name=self.job_type)


def schedule_list(value: object) -> list[Any]:
    """The check of `queue.<name>.periodic` as a whole: a list of at most MAX_SCHEDULES."""
    if isinstance(value, str):
        raise Invalid("expected a list of schedules, which only a file can hold, got a string")
    if not isinstance(value, list) or len(value) > MAX_SCHEDULES:
        raise Invalid(
            f"expected a list of at most {MAX_SCHEDULES} schedules such as "
            f"[{{name: nightly, schedule: '0 3 * * *', job: app.Nightly}}], got {kind(value)}"
        )
    return value


def read_schedules(value: object) -> tuple[PeriodicSettings, ...]:
    """Return the periodic jobs of `queue.<name>.periodic`, each entry checked.

    Raises:
        KeyProblem: Naming the entry's key relative to the queue (`periodic[0].schedule`).
    """
    try:
        checked = schedule_list(value)
    except Invalid as exc:
        raise KeyProblem("periodic", str(exc)) from None
    entries = tuple(_entry(f"periodic[{index}]", raw) for index, raw in enumerate(checked))
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.name in seen:
            raise KeyProblem(
                f"periodic[{index}].name",
                f"expected a name no other schedule of the queue has, got {entry.name!r} again",
            )
        seen.add(entry.name)
    return entries


def _entry(key: str, raw: object) -> PeriodicSettings:
    if not isinstance(raw, dict):
        raise KeyProblem(key, f"expected a mapping with name, job and schedule, got {kind(raw)}")
    for name in raw:
        if name not in SCHEDULE_KEYS:
            raise KeyProblem(
                f"{key}.{name}", f"unknown key; expected one of {', '.join(SCHEDULE_KEYS)}"
            )
    for required in ("name", "job"):
        if required not in raw:
            raise KeyProblem(
                f"{key}.{required}", f"expected a {required}: every schedule needs one"
            )
    tz = _checked(key, "tz", raw, _zone, "UTC")
    return PeriodicSettings(
        name=_checked(key, "name", raw, _name),
        job_type=_checked(key, "job", raw, text),
        schedule=_schedule(key, raw, tz),
        payload=_checked(key, "payload", raw, _payload, {}),
        tz=tz,
        misfire=_checked(key, "misfire", raw, one_of(MISFIRE_POLICIES), "skip"),
    )


def _checked(
    key: str,
    name: str,
    raw: Mapping[str, Any],
    check: Callable[[object], Any],
    default: Any = None,
) -> Any:
    """`check(raw[name])`, or `default` when absent; an Invalid becomes a KeyProblem of it."""
    if name not in raw:
        return default
    try:
        return check(raw[name])
    except Invalid as exc:
        raise KeyProblem(f"{key}.{name}", str(exc)) from None


def _schedule(key: str, raw: Mapping[str, Any], tz: str) -> str | timedelta:
    """The entry's `schedule` (cron) or `everySecond` (interval): exactly one of them."""
    given = [name for name in ("schedule", "everySecond") if name in raw]
    if len(given) != 1:
        found = "both" if given else "neither"
        raise KeyProblem(
            f"{key}.schedule", f"expected either schedule (cron) or everySecond, found {found}"
        )
    check = _cron if given[0] == "schedule" else _interval
    schedule: str | timedelta = _checked(key, given[0], raw, lambda value: check(value, tz))
    return schedule


def _cron(value: object, tz: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a cron expression such as '0 3 * * *', got {shown(value)}")
    try:
        parse_schedule(value, tz)
    except InvalidOption as exc:
        raise Invalid(
            f"expected a cron expression of 5 fields (6 with seconds first): {exc}"
        ) from None
    return value


def _interval(value: object, tz: str) -> timedelta:
    every: timedelta = seconds(positive=True)(value)
    if every % timedelta(milliseconds=1):
        raise Invalid(f"expected a number of seconds in whole milliseconds, got {shown(value)}")
    return every


def _name(value: object) -> str:
    try:
        return check_name(value)
    except InvalidOption:
        raise Invalid(
            f"expected a name of 1 to {MAX_NAME_CHARS} characters without ':' or NUL, "
            f"got {shown(value)}"
        ) from None


def _zone(value: object) -> str:
    if isinstance(value, str):
        with contextlib.suppress(InvalidOption):
            zone_named(value)
            return value
    raise Invalid(f"expected an IANA time zone name such as Europe/Berlin, got {shown(value)}")


def _payload(value: object) -> Any:
    """A JSON value (mappings with text keys, lists, text, numbers, booleans, null)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_PAYLOAD_DEPTH:
            raise Invalid(f"expected a payload nested at most {MAX_PAYLOAD_DEPTH} levels deep")
        if isinstance(node, dict):
            if not all(isinstance(name, str) for name in node):
                raise Invalid("expected a payload whose mappings have text keys")
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise Invalid(f"expected a payload of finite numbers, found {node}")
        elif node is not None and not isinstance(node, str | int | float):
            raise Invalid(f"expected a payload of JSON values, found {shown(node)}")
    try:
        _CODEC.encode(value)
    except EncodeError as exc:
        raise Invalid(f"expected a payload JSON can hold: {exc}") from None
    return value
