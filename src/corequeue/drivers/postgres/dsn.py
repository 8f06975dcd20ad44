"""Connection strings of the PostgreSQL driver: parsing, connect options, hiding the password."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import conninfo

from corequeue.errors import InvalidOption, StoreUnavailable
from corequeue.redact import redact, refuse_ambiguous

__all__ = ["connect_options", "parse_dsn", "redact", "store_errors"]


def parse_dsn(dsn: str) -> dict[str, Any]:
    """Return the options of a libpq connection string or URL.

    Raises:
        InvalidOption: If `dsn` is not a connection string (the message hides its password).
    """
    refuse_ambiguous(dsn, "PostgreSQL DSN")
    try:
        return conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise InvalidOption(f"not a PostgreSQL DSN: {redact(dsn)}") from exc


def connect_options(given: Mapping[str, Any], timeout: timedelta) -> dict[str, Any]:
    """Return the options every driver connection opens with, leaving what the DSN set."""
    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in given:
        options["connect_timeout"] = max(2, round(timeout.total_seconds()))  # libpq's minimum
    if "application_name" not in given:
        options["application_name"] = "corequeue"
    return options


@contextmanager
def store_errors(store: str, given: Mapping[str, Any]) -> Iterator[None]:
    """Turn psycopg errors into StoreUnavailable, naming `store` and never the password.

    Args:
        store: The redacted DSN.
        given: The DSN's options, whose password is masked should a message quote it.
    """
    try:
        yield
    except psycopg.Error as exc:
        reason = str(exc).strip() or type(exc).__name__
        password = given.get("password")
        if password:
            reason = reason.replace(str(password), "***")
        raise StoreUnavailable(store, reason) from exc
