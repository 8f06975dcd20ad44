"""Django integration: queues configured in settings.py, jobs that exist exactly when the
transaction that dispatched them commits, and a `manage.py corequeue_worker` command.

Needs the `django` extra (`pip install 'corequeue[django]'`). Add `"corequeue.contrib.django"`
to `INSTALLED_APPS` and describe the queues in `settings.COREQUEUE`, with the keys of the
configuration file (see docs/configuration.md):

    COREQUEUE = {
        "queue": {
            "default": {"driver": "postgres", "dsn": "postgresql://app@db/app"},
            "emails": {"driver": "sqlite", "path": "emails.db"},
        },
    }

Listeners are subscribed where Django finds them: the worker command imports the `jobs`
module of every installed app (`COREQUEUE_JOB_MODULES` names other modules to import).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from corequeue.config import Config, parse_config
from corequeue.errors import InvalidOption
from corequeue.factory import QueueFactory
from corequeue.queue import Queue

__all__ = ["dispatch_on_commit", "get_factory", "get_queue", "reset_factory"]

SETTING = "COREQUEUE"
"""The settings.py name of the configuration mapping."""

# The factory of the current settings, one per process as Django's own connections are: every
# view and the worker command share its queues. `reset_factory` forgets it.
_lock = threading.Lock()
_factories: dict[str, QueueFactory] = {}


def get_factory() -> QueueFactory:
    """Return the QueueFactory of `settings.COREQUEUE` (built once per process).

    Environment variables override keys as they do for a configuration file
    (`COREQUEUE_QUEUE__DEFAULT__PARALLELISM=4`). Without the setting: the built-in default, one
    `default` queue on SQLite `corequeue.db`.

    Raises:
        ConfigError: The setting holds a key or value the configuration file would refuse.
    """
    with _lock:
        factory = _factories.get(SETTING)
        if factory is None:
            factory = _factories[SETTING] = QueueFactory(_config())
        return factory


def get_queue(name: str = "default") -> Queue:
    """Return the queue called `name` of `settings.COREQUEUE`.

    Example:
        >>> dispatch_on_commit(get_queue("emails"), SendEmail("ada@example.com"))  # doctest: +SKIP
    """
    return get_factory().make(name)


def reset_factory() -> None:
    """Forget the factory, so the next `get_factory()` reads the settings again.

    Runs when a test changes `COREQUEUE` with `override_settings`. The queues of the old
    factory are not closed here (that needs an event loop): close them yourself if you opened
    connections through them.
    """
    with _lock:
        _factories.clear()


def dispatch_on_commit(
    queue: Queue, job: Any, *, using: str | None = None, join: bool | None = None
) -> str:
    """Enqueue `job` so that it exists exactly when the current transaction commits.

    On PostgreSQL with psycopg 3, when the queue keeps its jobs in the same database as the
    Django connection `using`, the job is inserted now, through that connection, inside its
    transaction: it commits with the transaction and is rolled back with it, and no worker sees
    it before the commit. Otherwise the job is dispatched from `transaction.on_commit`: not at
    all on a rollback, at once outside a transaction. Middleware `on_dispatch` hooks run now,
    in the caller's context (its trace, its Sentry scope).

    Args:
        queue: The queue (for example `get_queue("emails")`).
        job: Anything `Queue.dispatch_sync` takes.
        using: The database alias whose transaction counts (default: `default`).
        join: True to require joining the transaction (InvalidOption when the queue's store is
            not that connection's database), False to always wait for the commit; None
            (default) joins when it can.

    Returns:
        The job's id.

    Raises:
        InvalidOption: `join=True` and the transaction cannot be joined.
        EncodeError, PayloadTooLarge, MiddlewareError: As for `Queue.dispatch_sync`; nothing is
            enqueued.
        StoreUnavailable: When joining: the insert failed (the transaction is then broken, as
            after any failed statement). When waiting for the commit: raised from the commit.
    """
    alias = using or DEFAULT_DB_ALIAS
    persisted, delay = queue.prepare_sync(job)
    connection = _joinable(queue, alias) if join is not False else None
    if connection is not None:
        queue.driver.push_sync(persisted, delay, connection=connection)
    elif join:
        raise InvalidOption(
            f"dispatch_on_commit(join=True): queue {queue.name!r} does not keep its jobs in the "
            f"PostgreSQL database of Django's {alias!r} connection (psycopg 3), or no "
            f"transaction is open"
        )
    else:
        transaction.on_commit(lambda: queue.driver.push_sync(persisted, delay), using=alias)
    return persisted.id


def _joinable(queue: Queue, alias: str) -> Any:
    """Return the psycopg connection of `alias` when the queue's push can join its transaction."""
    django_connection = connections[alias]
    if django_connection.vendor != "postgresql" or not django_connection.in_atomic_block:
        return None
    try:
        import psycopg

        from corequeue.drivers.postgres import PostgresDriver
    except ImportError:  # psycopg 2, or no postgres extra: wait for the commit
        return None
    if not isinstance(queue.driver, PostgresDriver):
        return None
    django_connection.ensure_connection()
    raw = django_connection.connection
    if not isinstance(raw, psycopg.Connection) or not queue.driver.stores_in(raw):
        return None
    return raw


def _config() -> Config:
    data = getattr(settings, SETTING, None)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidOption(f"settings.{SETTING} must be a dict, got {type(data).__name__}")
    base_dir = getattr(settings, "BASE_DIR", None)
    return parse_config(
        data,
        source=f"settings.{SETTING}",
        environ=os.environ,
        base_dir=None if base_dir is None else Path(base_dir),
    )
