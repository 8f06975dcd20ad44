"""Flow-control limits of the SQLite driver: the limited pop, inside its write transaction.

`BEGIN IMMEDIATE` holds the file's write lock for the whole pop, so reading the flow state
(reserved jobs by group, the `corequeue_rates` rows), choosing the jobs and writing the moved
rates back is one atomic step for every process sharing the file.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from corequeue.drivers.flow import FlowState, Gate, group_scope
from corequeue.drivers.sql_state import PENDING, RESERVED
from corequeue.limits import HeldBack, Limits

RATES_TABLE: Final = """
CREATE TABLE IF NOT EXISTS corequeue_rates (
    queue TEXT NOT NULL,
    scope TEXT NOT NULL,
    next_start_us INTEGER NOT NULL,
    PRIMARY KEY (queue, scope)
)
"""
"""Each rate scope's next allowed start (schema 5): '' for the queue, 'g:<group>' per group."""

_RESERVED_BY_GROUP = f"""
SELECT job_group, COUNT(*) FROM corequeue_jobs WHERE queue = ? AND state = {RESERVED}
GROUP BY job_group
"""

_RATES = "SELECT scope, next_start_us FROM corequeue_rates WHERE queue = ?"

# Groups known to be closed are left out by the statement itself, so a group at its limit
# with many due jobs costs an index filter, not a round of Python per job.
_CANDIDATES = f"""
SELECT rowid, job_group FROM corequeue_jobs
WHERE queue = ? AND state = {PENDING} AND due_ms <= ?
AND (job_group IS NULL OR job_group NOT IN (SELECT value FROM json_each(?)))
ORDER BY priority DESC, due_ms, rowid LIMIT ?
"""

_SET_RATE = """
INSERT INTO corequeue_rates (queue, scope, next_start_us) VALUES (?, ?, ?)
ON CONFLICT (queue, scope) DO UPDATE SET next_start_us = excluded.next_start_us
"""

# A scope whose next start passed more than an interval ago restarts from now anyway.
_PRUNE_RATES = "DELETE FROM corequeue_rates WHERE queue = ? AND next_start_us < ?"

# A pop held back by a limit waits for a delayed job, a lease end, a settle (this process
# rings; others poll) or a rate to open, not for the due jobs it could not take.
_NEXT_EVENT = f"""
SELECT MIN(due_ms) FROM corequeue_jobs
WHERE queue = ? AND ((state = {PENDING} AND due_ms > ?) OR state = {RESERVED})
"""


@dataclass(frozen=True, slots=True)
class LimitedPop:
    """What a limited pop chose: rowids to reserve, and when to look again if none."""

    rowids: list[int]
    held: Counter[HeldBack]
    next_event_ms: int | None


def choose(
    db: sqlite3.Connection, *, queue: str, limits: Limits, now: int, now_us: int, limit: int
) -> LimitedPop:
    """Choose up to `limit` due jobs that `limits` let start; write the rates they advance."""
    gate = Gate(limits, _state(db, queue, now_us), now_us)
    chosen: list[int] = []
    closed = set(gate.blocked_groups(set(gate.state.reserved_by_group)))
    closed |= {scope[2:] for scope in gate.state.next_start_us if scope.startswith("g:")}
    closed = set(gate.blocked_groups(closed))
    while len(chosen) < limit:
        wanted = limit - len(chosen)
        rows = db.execute(_CANDIDATES, (queue, now, json.dumps(sorted(closed)), wanted)).fetchall()
        rows = [row for row in rows if row[0] not in chosen]
        newly_closed = _admit(gate, rows, chosen, closed)
        if len(rows) < wanted or not newly_closed or not gate.queue_is_open():
            break
    _write_rates(db, queue, gate, now_us)
    next_event_ms = None
    if not chosen:
        next_event_ms = db.execute(_NEXT_EVENT, (queue, now)).fetchone()[0]
        opens_us = gate.next_open_us()
        if opens_us is not None:
            opens_ms = -(-opens_us // 1000)
            next_event_ms = opens_ms if next_event_ms is None else min(next_event_ms, opens_ms)
    return LimitedPop(chosen, gate.held, next_event_ms)


def _admit(gate: Gate, rows: list[Any], chosen: list[int], closed: set[str]) -> bool:
    """Let the candidate rows through the gate in order; return whether a group closed."""
    newly_closed = False
    for rowid, group in rows:
        if not gate.queue_is_open():
            break
        if group in closed:
            continue
        if gate.admit(group):
            chosen.append(rowid)
        else:
            closed.add(group)
            newly_closed = True
    return newly_closed


def _state(db: sqlite3.Connection, queue: str, now_us: int) -> FlowState:
    by_group: Counter[str] = Counter()
    reserved = 0
    for group, count in db.execute(_RESERVED_BY_GROUP, (queue,)):
        reserved += count
        if group is not None:
            by_group[group] = count
    rates = dict(db.execute(_RATES, (queue,)).fetchall())
    return FlowState(reserved, by_group, rates)


def _write_rates(db: sqlite3.Connection, queue: str, gate: Gate, now_us: int) -> None:
    changed = gate.changed_scopes()
    if changed:
        db.execute(_PRUNE_RATES, (queue, gate.stale_before_us()))
        db.executemany(_SET_RATE, [(queue, scope, at) for scope, at in changed.items()])


__all__ = ["RATES_TABLE", "LimitedPop", "choose", "group_scope"]
