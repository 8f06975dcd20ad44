"""The SQL behind job inspection (the dashboard): list, look up, delete and retry single jobs.

Kept beside queries.sql rather than in it, with the same placeholders: `{jobs}` is the quoted
jobs table, `{now}` the driver's clock or, when it is NULL, the database server's (in
milliseconds, rounded down).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache

from psycopg import sql

from corequeue.drivers.postgres.queries import clock_placeholders

_COLUMNS = (
    "state, due_ms, due_ms > {now}, id, type, value, handle_timeout_ms, backoff_ms, attempts, "
    "max_attempts, last_error, headers, priority, job_group, keep_result_ms, result, progress, "
    "progress_message"
)
_TYPE = "AND (%(job_type)s::text IS NULL OR type = %(job_type)s) "
_PAGE = f"{_TYPE}ORDER BY due_ms, seq OFFSET %(offset)s LIMIT %(limit)s"
_READY_PAGE = f"{_TYPE}ORDER BY priority DESC, due_ms, seq OFFSET %(offset)s LIMIT %(limit)s"

_STATEMENTS = {
    "list_waiting": f"SELECT {_COLUMNS} FROM {{jobs}} "
    f"WHERE queue = %(queue)s AND state = 0 AND due_ms <= {{now}} {_READY_PAGE}",
    "list_delayed": f"SELECT {_COLUMNS} FROM {{jobs}} "
    f"WHERE queue = %(queue)s AND state = 0 AND due_ms > {{now}} {_PAGE}",
    "list_state": f"SELECT {_COLUMNS} FROM {{jobs}} "
    f"WHERE queue = %(queue)s AND state = %(state)s {_PAGE}",
    "get": f"SELECT {_COLUMNS} FROM {{jobs}} WHERE queue = %(queue)s AND id = %(id)s",
    "groups": """
        SELECT job_group, state, count(*) FROM {jobs}
        WHERE queue = %(queue)s AND job_group IS NOT NULL
        AND (state = 1 OR (state = 0 AND due_ms <= {now}))
        GROUP BY 1, 2
    """,
    "delete": "DELETE FROM {jobs} "
    "WHERE queue = %(queue)s AND id = %(id)s AND state IN (0, 2, 3, 4)",
    # Like reload, for one job: wake pops on commit.
    "retry": """
        WITH moved AS (
            UPDATE {jobs} SET state = 0, due_ms = {now}
            WHERE queue = %(queue)s AND id = %(id)s AND state IN (2, 3)
            RETURNING 1
        )
        SELECT count(*), CASE WHEN count(*) > 0 THEN pg_notify(%(channel)s, %(queue)s) END
        FROM moved
    """,
}


@dataclass(frozen=True, slots=True)
class InspectionQueries:
    """The inspection statements, rendered for one schema.

    Each listing and lookup returns rows of `state, due_ms, is_later, <envelope columns>`,
    where `is_later` says whether a pending job is not yet due (so delayed).
    """

    list_waiting: bytes
    list_delayed: bytes
    list_state: bytes
    get: bytes
    groups: bytes
    delete: bytes
    retry: bytes


@cache
def inspection_queries(schema: str) -> InspectionQueries:
    """Return the inspection statements with the jobs table of `schema` and the clock filled in."""
    placeholders = {"jobs": sql.Identifier(schema, "jobs"), **clock_placeholders()}
    rendered = {
        field.name: sql.SQL(_STATEMENTS[field.name]).format(**placeholders).as_bytes(None)
        for field in fields(InspectionQueries)
    }
    return InspectionQueries(**rendered)
