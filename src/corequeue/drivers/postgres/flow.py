"""Flow-control limits of the PostgreSQL driver: the limited pop, one transaction.

A limited pop locks the queue's row of `queues` (`FOR UPDATE`): limited pops of one queue take
turns, so reading the flow state (reserved jobs by group, the `rates` rows), choosing the jobs
and moving the rates they advance is atomic for every worker. Pops without limits take no such
lock. Statements are rendered once per schema, like queries.sql.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

import psycopg
from psycopg import sql

from corequeue.drivers.flow import FlowState, Gate
from corequeue.drivers.postgres.queries import clock_placeholders
from corequeue.errors import DriverError
from corequeue.limits import HeldBack, Limits

_STATEMENTS = {
    "ensure": "INSERT INTO {queues} (queue) VALUES (%(queue)s) ON CONFLICT (queue) DO NOTHING",
    "lock": "SELECT paused, {now_us} FROM {queues} WHERE queue = %(queue)s FOR UPDATE",
    "recover": """
        UPDATE {jobs} AS j SET
            state = CASE WHEN j.attempts < j.max_attempts THEN 0 ELSE 3 END,
            attempts = CASE WHEN j.attempts < j.max_attempts THEN j.attempts + 1
                ELSE j.attempts END,
            last_error = %(lease_expired)s, due_ms = %(now)s, token = NULL
        WHERE queue = %(queue)s AND state = 1 AND due_ms <= %(now)s
    """,
    "reserved_by_group": """
        SELECT job_group, count(*) FROM {jobs} WHERE queue = %(queue)s AND state = 1
        GROUP BY job_group
    """,
    "rates": """
        SELECT scope, next_start_us FROM {rates} WHERE queue = %(queue)s
    """,
    # Groups known to be closed are left out by the statement: a group at its limit with many
    # due jobs costs an index filter, not a round trip per job.
    "candidates": """
        SELECT id, job_group FROM {jobs}
        WHERE queue = %(queue)s AND state = 0 AND due_ms <= %(now)s
        AND (job_group IS NULL OR NOT job_group = ANY(%(closed)s::text[]))
        ORDER BY priority DESC, due_ms, seq
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    """,
    "reserve": """
        UPDATE {jobs} SET state = 1, due_ms = %(until)s, token = %(token)s
        WHERE queue = %(queue)s AND id = ANY(%(ids)s::text[]) AND state = 0
        RETURNING id, type, value, handle_timeout_ms, backoff_ms, attempts, max_attempts,
            last_error, headers, priority, job_group, keep_result_ms, result, progress,
            progress_message, due_ms, seq
    """,
    "set_rates": """
        INSERT INTO {rates} (queue, scope, next_start_us)
        SELECT %(queue)s, scope, next_start_us
        FROM unnest(%(scopes)s::text[], %(starts)s::bigint[]) AS r (scope, next_start_us)
        ON CONFLICT (queue, scope) DO UPDATE SET next_start_us = excluded.next_start_us
    """,
    "prune_rates": """
        DELETE FROM {rates} WHERE queue = %(queue)s AND next_start_us < %(stale_us)s
    """,
    "next_event": """
        SELECT min(due_ms) FROM {jobs}
        WHERE queue = %(queue)s AND ((state = 0 AND due_ms > %(now)s) OR state = 1)
    """,
}


@dataclass(frozen=True, slots=True)
class FlowQueries:
    """The statements of a limited pop, rendered for one schema."""

    ensure: bytes
    lock: bytes
    recover: bytes
    reserved_by_group: bytes
    rates: bytes
    candidates: bytes
    reserve: bytes
    set_rates: bytes
    prune_rates: bytes
    next_event: bytes


@cache
def flow_queries(schema: str) -> FlowQueries:
    """Return the limited pop's statements for `schema`."""
    placeholders = {
        "jobs": sql.Identifier(schema, "jobs"),
        "queues": sql.Identifier(schema, "queues"),
        "rates": sql.Identifier(schema, "rates"),
        **clock_placeholders(),
    }
    rendered = {
        field.name: sql.SQL(_STATEMENTS[field.name]).format(**placeholders).as_bytes(None)
        for field in fields(FlowQueries)
    }
    return FlowQueries(**rendered)


@dataclass(frozen=True, slots=True)
class LimitedPop:
    """The rows a limited pop reserved, why jobs were held, and when to look again if none.

    `wait_ms` is how long until a delayed job falls due, a lease ends or a rate opens (None:
    nothing is scheduled; a settle or a push wakes the pop).
    """

    rows: list[Any]
    held: Counter[HeldBack]
    wait_ms: int | None


async def reserve_limited(
    connection: psycopg.AsyncConnection[Any],
    queries: FlowQueries,
    limits: Limits,
    params: dict[str, Any],
    lease_ms: int,
) -> LimitedPop:
    """Reserve up to `params["limit"]` due jobs that `limits` let start, in one transaction.

    `params` holds the driver's usual parameters (queue, now_us or None, token, limit,
    lease_expired); the store's clock is read once, under the lock, and used throughout.
    """
    async with connection.transaction():
        await connection.execute(queries.ensure, params)
        paused, now_us = await _one(connection, queries.lock, params)
        now = now_us // 1000
        timed = {**params, "now_us": now_us, "now": now, "until": -(-now_us // 1000) + lease_ms}
        await connection.execute(queries.recover, timed)
        if paused:
            return LimitedPop(
                [], Counter(), _wait(await _next_event(connection, queries, timed), now)
            )
        gate = Gate(limits, await _state(connection, queries, timed), now_us)
        ids = await _choose(connection, queries, gate, timed)
        changed = gate.changed_scopes()
        if changed:
            await connection.execute(
                queries.prune_rates, {**timed, "stale_us": gate.stale_before_us()}
            )
            rates = {"scopes": list(changed), "starts": list(changed.values())}
            await connection.execute(queries.set_rates, {**timed, **rates})
        if not ids:
            next_ms = await _next_event(connection, queries, timed)
            opens_us = gate.next_open_us()
            if opens_us is not None:
                opens_ms = -(-opens_us // 1000)
                next_ms = opens_ms if next_ms is None else min(next_ms, opens_ms)
            return LimitedPop([], gate.held, _wait(next_ms, now))
        cursor = await connection.execute(queries.reserve, {**timed, "ids": ids})
        return LimitedPop(await cursor.fetchall(), gate.held, None)


def _wait(next_ms: int | None, now: int) -> int | None:
    return None if next_ms is None else max(next_ms - now, 0)


async def _choose(
    connection: psycopg.AsyncConnection[Any],
    queries: FlowQueries,
    gate: Gate,
    params: dict[str, Any],
) -> list[str]:
    limit = params["limit"]
    closed = set(gate.blocked_groups(set(gate.state.reserved_by_group)))
    closed |= set(
        gate.blocked_groups({s[2:] for s in gate.state.next_start_us if s.startswith("g:")})
    )
    chosen: list[str] = []
    while len(chosen) < limit and gate.queue_is_open():
        wanted = limit - len(chosen)
        cursor = await connection.execute(
            queries.candidates, {**params, "closed": sorted(closed), "limit": wanted}
        )
        rows = [row for row in await cursor.fetchall() if row[0] not in chosen]
        newly_closed = False
        for job_id, group in rows:
            if not gate.queue_is_open():
                break
            if group in closed:
                continue
            if gate.admit(group):
                chosen.append(job_id)
            else:
                closed.add(group)
                newly_closed = True
        if len(rows) < wanted or not newly_closed:
            break
    return chosen


async def _state(
    connection: psycopg.AsyncConnection[Any], queries: FlowQueries, params: dict[str, Any]
) -> FlowState:
    by_group: Counter[str] = Counter()
    reserved = 0
    cursor = await connection.execute(queries.reserved_by_group, params)
    for group, count in await cursor.fetchall():
        reserved += count
        if group is not None:
            by_group[group] = count
    cursor = await connection.execute(queries.rates, params)
    return FlowState(reserved, by_group, dict(await cursor.fetchall()))


async def _next_event(
    connection: psycopg.AsyncConnection[Any], queries: FlowQueries, params: dict[str, Any]
) -> int | None:
    (next_ms,) = await _one(connection, queries.next_event, params)
    return None if next_ms is None else int(next_ms)


async def _one(
    connection: psycopg.AsyncConnection[Any], query: bytes, params: dict[str, Any]
) -> tuple[Any, ...]:
    cursor = await connection.execute(query, params)
    row = await cursor.fetchone()
    if row is None:
        raise DriverError("PostgreSQL returned no row where one was expected")
    return tuple(row)
