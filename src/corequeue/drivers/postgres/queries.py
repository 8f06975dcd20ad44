"""The SQL of the PostgreSQL driver: read from queries.sql and bound to one schema.

Statements are rendered once per driver, so psycopg can prepare them after a few uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cache
from importlib.resources import files

from psycopg import sql

# The server's clock in microseconds. What is due is decided with `statement_timestamp()`: one
# value per statement, so usable in index conditions, and never later than the real instant.
# Due times are computed from `clock_timestamp()`: the instant the row is written, never before
# the statement began, so a job is never due before its dispatch instant plus its delay.
_DECIDE_US = "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint"
_WRITE_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
_PACKAGE = "corequeue.drivers.postgres"
_SECTION = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Queries:
    """Every statement of the driver, rendered for one schema."""

    push: bytes
    reserve: bytes
    next_event: bytes
    set_paused: bytes
    is_paused: bytes
    ack: bytes
    ack_many: bytes
    complete_many: bytes
    prune: bytes
    beat: bytes
    forget_worker: bytes
    workers: bytes
    count_finished: bytes
    throughput: bytes
    settle: bytes
    renew: bytes
    renew_many: bytes
    release: bytes
    cancel: bytes
    reload: bytes
    flush_state: bytes
    flush_waiting: bytes
    flush_delayed: bytes
    info: bytes
    enqueue_slot: bytes
    schedule_slots: bytes
    forget_schedule: bytes

    @classmethod
    def for_schema(cls, schema: str) -> Queries:
        """Return the statements with the tables of `schema` and the clock filled in.

        The clock placeholders read the driver's clock from the `now_us` parameter and fall
        back to the database server's clock when it is NULL, so one text serves both.
        """
        placeholders = {
            "jobs": sql.Identifier(schema, "jobs"),
            "periodic": sql.Identifier(schema, "periodic"),
            "queues": sql.Identifier(schema, "queues"),
            "workers": sql.Identifier(schema, "workers"),
            "throughput": sql.Identifier(schema, "throughput"),
            **clock_placeholders(),
        }
        texts = _named_statements()
        rendered = {
            field.name: sql.SQL(texts[field.name]).format(**placeholders).as_bytes(None)
            for field in fields(cls)
        }
        return cls(**rendered)


def clock_placeholders() -> dict[str, sql.Composable]:
    """Return `{now}`, `{now_up}` (milliseconds, rounded down and up) and `{now_us}`.

    Integer division rounds down: epoch times are positive.
    """
    decide_us = f"COALESCE(%(now_us)s::bigint, {_DECIDE_US})"
    write_us = f"COALESCE(%(now_us)s::bigint, {_WRITE_US})"
    return {
        "now": sql.SQL(f"({decide_us} / 1000)"),
        "now_up": sql.SQL(f"(({write_us} + 999) / 1000)"),
        "now_us": sql.SQL(f"({write_us})"),
    }


@cache
def _named_statements() -> dict[str, str]:
    """Return the statements of queries.sql by name, without their comment lines."""
    text = files(_PACKAGE).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _SECTION.split(text)[1:]
    return {name: _strip_comments(body) for name, body in zip(parts[::2], parts[1::2], strict=True)}


def _strip_comments(body: str) -> str:
    lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")
