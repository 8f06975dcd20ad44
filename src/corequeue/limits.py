"""Flow-control limits: how many jobs of a queue (or of one group) may run or start.

`Limits` travels from `Queue(limits=...)` to the driver (`Driver.set_limits`), and every pop of
that driver enforces it in the same atomic step of the store that reserves, against what the
store holds for every worker: the reserved set (concurrency) and a per-scope "next start" time
on the store's clock (rates). See docs/flow-control.md.

Rates space starts evenly (a generic cell rate algorithm): `Rate(100, 1 s)` lets one job
start every 10 ms on the store's clock. A start may come up to `Rate.ahead_us` (10 ms at most)
before its turn, so one pop takes every start of that stretch at once, and a start that came
late does not push the schedule back (the long-run rate is the one asked). A window of `per`
holds at most `limit` starts plus those of 10 ms, and one more right after a late start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

from corequeue.errors import InvalidOption, shown

MAX_LIMIT: Final = 1_000_000
"""The largest concurrency or rate count `Limits` accepts."""

RATE_AHEAD_US: Final = 10_000
"""How far (µs) ahead of a rate's even schedule a start may come (see `Rate.ahead_us`)."""


class HeldBack(StrEnum):
    """Which limit left a due job waiting (the `reason` label of the held-back metric)."""

    CONCURRENCY = "concurrency"
    GROUP_CONCURRENCY = "group_concurrency"
    RATE = "rate"
    GROUP_RATE = "group_rate"


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` starts per `per`, evenly spaced (one every `per / limit`).

    Example:
        >>> Rate(100, timedelta(seconds=1)).interval_us
        10000
        >>> Rate.parse("5/m")
        Rate(limit=5, per=datetime.timedelta(seconds=60))
    """

    limit: int
    per: timedelta

    def __post_init__(self) -> None:
        _check_count("Rate limit", self.limit)
        if not isinstance(self.per, timedelta) or self.per <= timedelta(0):
            raise InvalidOption(f"Rate per must be a positive timedelta, got {shown(self.per)}")
        if self.interval_us < 1:
            raise InvalidOption(f"Rate {self.limit} per {self.per} is faster than 1 per µs")

    @property
    def interval_us(self) -> int:
        """Microseconds between two starts, rounded up (never faster than asked)."""
        per_us = self.per // timedelta(microseconds=1)
        return -(-per_us // self.limit)

    @property
    def ahead_us(self) -> int:
        """How far ahead of its even schedule a start may come: up to 10 ms, within `per`.

        A pop takes every start due by now plus this much in one go, so a fast rate (say
        100,000/s) does not cost a pop per job.
        """
        per_us = self.per // timedelta(microseconds=1)
        return max(0, min(RATE_AHEAD_US, per_us - self.interval_us))

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read a rate written `"<limit>/<unit>"` with unit s, m or h (also `"10/5s"`).

        Raises:
            InvalidOption: For any other text.
        """
        found = _RATE.fullmatch(text.strip()) if isinstance(text, str) else None
        if found is None:
            raise InvalidOption(
                f'a rate is written like "100/s", "5/m" or "10/30s" (units s, m, h), '
                f"got {shown(text)}"
            )
        count, units = found[1], int(found[2] or 1)
        return cls(int(count), units * _UNITS[found[3]])

    def __str__(self) -> str:
        return f"{self.limit}/{_duration_text(self.per)}"


@dataclass(frozen=True, slots=True)
class Limits:
    """Flow-control limits of a queue, enforced by the store at every pop.

    Args:
        concurrency: At most this many jobs of the queue reserved at once, across workers.
        group_concurrency: At most this many jobs of one group reserved at once.
        rate: At most this many starts per window for the queue.
        group_rate: At most this many starts per window for each group.

    Jobs without a group are limited by `concurrency` and `rate` only.

    Example:
        >>> limits = Limits(concurrency=20, group_concurrency=2, rate=Rate.parse("100/s"))
        >>> limits.is_empty
        False
    """

    concurrency: int | None = None
    group_concurrency: int | None = None
    rate: Rate | None = None
    group_rate: Rate | None = None

    def __post_init__(self) -> None:
        for name in ("concurrency", "group_concurrency"):
            value = getattr(self, name)
            if value is not None:
                _check_count(f"Limits {name}", value)
        for name in ("rate", "group_rate"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Rate):
                raise InvalidOption(f"Limits {name} must be a Rate, got {shown(value)}")

    @property
    def is_empty(self) -> bool:
        """Whether no limit is set."""
        return self == _NO_LIMITS

    @property
    def limits_concurrency(self) -> bool:
        """Whether a concurrency limit is set (so a settle may let a held-back job start)."""
        return self.concurrency is not None or self.group_concurrency is not None

    @property
    def limits_groups(self) -> bool:
        """Whether a per-group limit is set."""
        return self.group_concurrency is not None or self.group_rate is not None

    def describe(self) -> dict[str, str | int]:
        """Return the limits that are set, by configuration name (for the CLI and dashboard)."""
        described: dict[str, str | int] = {}
        if self.concurrency is not None:
            described["concurrency"] = self.concurrency
        if self.group_concurrency is not None:
            described["groupConcurrency"] = self.group_concurrency
        if self.rate is not None:
            described["rate"] = str(self.rate)
        if self.group_rate is not None:
            described["groupRate"] = str(self.group_rate)
        return described


_NO_LIMITS: Final = Limits()
_RATE = re.compile(r"(\d+)\s*/\s*(\d+)?\s*([smh])")
_UNITS: Final = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1)}


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidOption(f"{name} must be an int from 1 to {MAX_LIMIT}, got {shown(value)}")


def _duration_text(per: timedelta) -> str:
    seconds = per.total_seconds()
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count}{unit}"
    return f"{seconds}s"
