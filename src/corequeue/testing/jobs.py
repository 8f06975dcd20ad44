"""Small helpers for driver tests: build a persisted job, drain a driver.

They need nothing beyond corequeue itself, so tests of any kind may use them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from corequeue.drivers.base import Driver
from corequeue.errors import QueueEmpty
from corequeue.job import PersistedJob


def persisted(job_id: str, **fields: Any) -> PersistedJob:
    """Return a persisted job with id `job_id` and a small JSON payload.

    Args:
        job_id: The job's id.
        fields: Any other PersistedJob field, replacing the defaults.

    Example:
        >>> persisted("a", attempts=2).attempts
        2
    """
    values: dict[str, Any] = {
        "type": "tests.Job",
        "value": b'{"n":1}',
        "handle_timeout": timedelta(minutes=1),
    }
    values.update(fields)
    return PersistedJob(id=job_id, **values)


def with_every_field(job_id: str = "a") -> PersistedJob:
    """Return a job whose every envelope field differs from its default (and a binary payload).

    Example:
        >>> with_every_field().last_error
        'boom'
    """
    return persisted(
        job_id,
        value=b"\x00\xffnot utf-8",
        handle_timeout=timedelta(seconds=7),
        backoff=timedelta(seconds=3),
        attempts=2,
        max_attempts=4,
        last_error="boom",
        headers=dict(EVERY_HEADER),
        priority=7,
        group="acme",
        keep_result=timedelta(minutes=5),
    )


EVERY_HEADER = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "request-id": "r-42",
    "ünïcode name": 'quotes " and \\ backslash, ✓',
    "empty": "",
}
"""The headers of `with_every_field`: text a store must keep as it is."""


async def pop_all(driver: Driver) -> list[str]:
    """Pop until the driver is empty, acking each job; return the ids popped, in order."""
    ids: list[str] = []
    while True:
        try:
            job = await driver.pop()
        except QueueEmpty:
            return ids
        ids.append(job.id)
        await driver.ack(job)
