"""Versioned schema migrations of the PostgreSQL driver.

Each migration is a file `NNNN_<what>.sql` of this package, numbered from 0001 without gaps;
`{schema}` in it stands for the quoted schema name. `<schema>.schema_version` records every
version applied. `migrate()` applies the missing ones in one transaction, holding an advisory
lock named after the schema, so workers starting together neither race nor apply one twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from psycopg import AsyncConnection, sql

from corequeue.errors import DriverError, InvalidOption

_PACKAGE = "corequeue.drivers.postgres"
_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")

_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of the schema."""

    version: int
    name: str
    text: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Return every migration shipped with this release, oldest first."""
    found: list[Migration] = []
    for resource in files(_PACKAGE).iterdir():
        match = _FILE_NAME.match(resource.name)
        if match:
            text = resource.read_text(encoding="utf-8")
            found.append(Migration(int(match[1]), match[2], text))
    found.sort(key=lambda migration: migration.version)
    if [migration.version for migration in found] != list(range(1, len(found) + 1)):
        raise DriverError(f"PostgreSQL migrations are not numbered 1..n: {found}")
    return tuple(found)


def latest_version() -> int:
    """Return the schema version this release writes and reads."""
    return migrations()[-1].version


async def current_version(connection: AsyncConnection[Any], schema: str) -> int:
    """Return the newest schema version applied in `schema` (0: none, or no schema at all)."""
    table = sql.Identifier(schema, "schema_version").as_string(None)
    cursor = await connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
    exists = await cursor.fetchone()
    if not exists or not exists[0]:
        return 0
    query = sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(
        sql.Identifier(schema, "schema_version")
    )
    cursor = await connection.execute(query)
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(
    connection: AsyncConnection[Any], schema: str, target: int | None = None
) -> list[int]:
    """Bring `schema` to version `target`; return the versions applied (none: already there).

    Args:
        connection: An autocommit connection; the migration runs in its own transaction.
        schema: The schema holding corequeue's tables, created when missing.
        target: The version to reach, from 1 to `latest_version()`; None for the latest. Only
            tests that start from an older schema pass one: this release reads the latest.

    Raises:
        DriverError: If the schema is newer than this release understands.
        InvalidOption: If `target` is not a version of this release.
    """
    target = latest_version() if target is None else _known(target)
    # Up to date: touch nothing, so a role without CREATE privilege can still start.
    if await current_version(connection, schema) == target:
        return []
    async with connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"corequeue migrate {schema}",),
        )
        await connection.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
        )
        version_table = sql.Identifier(schema, "schema_version")
        await connection.execute(sql.SQL(_CREATE_VERSION_TABLE).format(table=version_table))
        found = await current_version(connection, schema)
        if found > latest_version():
            raise DriverError(
                f"schema {schema!r} is at version {found}, newer than this release "
                f"understands ({latest_version()}): upgrade corequeue"
            )
        return [await _apply(connection, schema, step) for step in migrations()[found:target]]


def _known(version: int) -> int:
    if not 1 <= version <= latest_version():
        raise InvalidOption(
            f"target must be a schema version from 1 to {latest_version()}, got {version}"
        )
    return version


async def _apply(connection: AsyncConnection[Any], schema: str, step: Migration) -> int:
    await connection.execute(sql.SQL(step.text).format(schema=sql.Identifier(schema)))
    await connection.execute(
        sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)").format(
            sql.Identifier(schema, "schema_version")
        ),
        (step.version, step.name),
    )
    return step.version
