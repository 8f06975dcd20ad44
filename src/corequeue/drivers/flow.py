"""The admission rule of flow control, shared by the drivers that decide it in Python.

In-process, SQLite and PostgreSQL read the queue's flow state (reserved jobs by group, the next
start each rate allows) inside the atomic step that reserves (a lock, a write transaction, a
row lock), then ask a `Gate` which due jobs, offered in pop order, may start. The Redis driver
applies the same rule in pop.lua. Rates: a start at `now` is allowed when the scope's next
allowed start is at most `Rate.ahead_us` after `now`, and moves it one interval on (see `turn`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta  # noqa: F401 (the doctest of `turn` uses it)

from corequeue.limits import HeldBack, Limits, Rate

QUEUE_SCOPE = ""
"""The scope key of the queue's own rate; a group's is `group_scope(name)`."""


def group_scope(group: str) -> str:
    """Return the scope key of `group`'s rate (never equal to QUEUE_SCOPE)."""
    return f"g:{group}"


@dataclass(slots=True)
class FlowState:
    """What the store holds that limits are checked against.

    Attributes:
        reserved: Jobs of the queue reserved now.
        reserved_by_group: Reserved jobs of each group (groups with none may be absent).
        next_start_us: The next allowed start of each rate scope (absent: at once).
    """

    reserved: int = 0
    reserved_by_group: Counter[str] = field(default_factory=Counter)
    next_start_us: dict[str, int] = field(default_factory=dict)


class Gate:
    """Decides, job by job in pop order, which due jobs may start under `limits`.

    Args:
        limits: The limits of the popping worker.
        state: The store's flow state, read in the pop's atomic step; updated as jobs are let
            through, so a caller writes back `changed_scopes()` before the step ends.
        now_us: The store's clock.
    """

    def __init__(self, limits: Limits, state: FlowState, now_us: int) -> None:
        self.limits = limits
        self.state = state
        self.now_us = now_us
        self.held: Counter[HeldBack] = Counter()
        self._changed: set[str] = set()

    def queue_is_open(self) -> bool:
        """Whether the queue-wide limits let one more job start; counts a hold when not."""
        limits, state = self.limits, self.state
        if limits.concurrency is not None and state.reserved >= limits.concurrency:
            self.held[HeldBack.CONCURRENCY] += 1
            return False
        if limits.rate is not None and not self._is_due(QUEUE_SCOPE, limits.rate):
            self.held[HeldBack.RATE] += 1
            return False
        return True

    def group_is_open(self, group: str | None) -> bool:
        """Whether a job of `group` may start as far as per-group limits go."""
        if group is None:
            return True
        limits = self.limits
        if (
            limits.group_concurrency is not None
            and self.state.reserved_by_group[group] >= limits.group_concurrency
        ):
            self.held[HeldBack.GROUP_CONCURRENCY] += 1
            return False
        if limits.group_rate is not None and not self._is_due(
            group_scope(group), limits.group_rate
        ):
            self.held[HeldBack.GROUP_RATE] += 1
            return False
        return True

    def admit(self, group: str | None) -> bool:
        """Let one job of `group` start if every limit allows it; record the start if so."""
        if not self.queue_is_open() or not self.group_is_open(group):
            return False
        self.state.reserved += 1
        if self.limits.rate is not None:
            self._advance(QUEUE_SCOPE, self.limits.rate)
        if group is not None:
            self.state.reserved_by_group[group] += 1
            if self.limits.group_rate is not None:
                self._advance(group_scope(group), self.limits.group_rate)
        return True

    def blocked_groups(self, groups: set[str]) -> list[str]:
        """Return those of `groups` that may not start a job now (without counting holds)."""
        saved = self.held.copy()
        blocked = [group for group in sorted(groups) if not self.group_is_open(group)]
        self.held = saved
        return blocked

    def changed_scopes(self) -> dict[str, int]:
        """Return the rate scopes whose next allowed start moved, with the new value."""
        return {scope: self.state.next_start_us[scope] for scope in self._changed}

    def stale_before_us(self) -> int:
        """Rate scopes whose next start is before this may be forgotten: they restart anyway."""
        intervals = [
            rate.interval_us for rate in (self.limits.rate, self.limits.group_rate) if rate
        ]
        return self.now_us - max(intervals, default=0)

    def next_open_us(self) -> int | None:
        """The soonest instant a rate that held a job back opens again (None: no rate did)."""
        if not (self.held[HeldBack.RATE] or self.held[HeldBack.GROUP_RATE]):
            return None
        opens = []
        for scope, at in self.state.next_start_us.items():
            rate = self.limits.rate if scope == QUEUE_SCOPE else self.limits.group_rate
            if rate is not None and at - rate.ahead_us > self.now_us:
                opens.append(at - rate.ahead_us)
        return min(opens, default=None)

    def _is_due(self, scope: str, rate: Rate) -> bool:
        start = turn(self.state.next_start_us.get(scope), self.now_us, rate)
        return start <= self.now_us + rate.ahead_us

    def _advance(self, scope: str, rate: Rate) -> None:
        start = turn(self.state.next_start_us.get(scope), self.now_us, rate)
        self.state.next_start_us[scope] = start + rate.interval_us
        self._changed.add(scope)


def turn(next_us: int | None, now_us: int, rate: Rate) -> int:
    """Return the instant the next start of a rate scope is scheduled at, seen at `now_us`.

    It is the stored next start (`next_us`), unless that passed more than one interval ago or
    none is stored: then now. A start late by less than an interval so keeps the schedule, and
    the wake-up delay of pops does not slow a rate down. The start may happen once
    `turn <= now + rate.ahead_us`; the next one's turn is one interval later.

    Example:
        >>> rate = Rate(50, timedelta(seconds=1))  # one start every 20 ms
        >>> turn(1_000_000, 1_004_000, rate), turn(1_000_000, 1_050_000, rate)
        (1000000, 1050000)
    """
    if next_us is None or now_us - next_us >= rate.interval_us:
        return now_us
    return next_us
