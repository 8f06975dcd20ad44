"""The SQL of the PostgreSQL driver: read from queries.sql and bound to one schema.

Statements are rendered once per driver, so psycopg can prepare them after a few uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cache
from importlib.resources import files

from psycopg import sql

_NOW = "floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint"
_NOW_UP = "ceil(extract(epoch FROM statement_timestamp()) * 1000)::bigint"
_PACKAGE = "corequeue.drivers.postgres"
_SECTION = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Queries:
    """Every statement of the driver, rendered for one schema."""

    push: bytes
    reserve: bytes
    next_event: bytes
    ack: bytes
    ack_many: bytes
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

    @classmethod
    def for_schema(cls, schema: str) -> Queries:
        """Return the statements with the jobs table of `schema` and the clock filled in.

        `{now}` reads the driver's clock from the `now` parameter and falls back to the
        database server's clock when it is NULL, so one text serves both.
        """
        placeholders = {
            "jobs": sql.Identifier(schema, "jobs"),
            "now": sql.SQL(f"COALESCE(%(now)s::bigint, {_NOW})"),
            "now_up": sql.SQL(f"COALESCE(%(now)s::bigint, {_NOW_UP})"),
        }
        texts = _named_statements()
        rendered = {
            field.name: sql.SQL(texts[field.name]).format(**placeholders).as_bytes(None)
            for field in fields(cls)
        }
        return cls(**rendered)


@cache
def _named_statements() -> dict[str, str]:
    """Return the statements of queries.sql by name, without their comment lines."""
    text = files(_PACKAGE).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _SECTION.split(text)[1:]
    return {name: _strip_comments(body) for name, body in zip(parts[::2], parts[1::2], strict=True)}


def _strip_comments(body: str) -> str:
    lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")
