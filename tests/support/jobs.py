"""Small builders shared by the test suites."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from corequeue.job import PersistedJob


def persisted(job_id: str, **fields: Any) -> PersistedJob:
    """Return a persisted job with id `job_id` and a small JSON payload."""
    values: dict[str, Any] = {
        "type": "tests.Job",
        "value": b'{"n":1}',
        "handle_timeout": timedelta(minutes=1),
    }
    values.update(fields)
    return PersistedJob(id=job_id, **values)
