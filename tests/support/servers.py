"""Where the test servers are: URLs from the environment, set by scripts/test.

Without a server a test is skipped on a laptop and fails in CI (CI=true), so a missing server
can never turn a CI run green.
"""

from __future__ import annotations

import os

import pytest

REDIS_URL_VAR = "COREQUEUE_TEST_REDIS_URL"
REDIS_CLUSTER_URL_VAR = "COREQUEUE_TEST_REDIS_CLUSTER_URL"
POSTGRES_DSN_VAR = "COREQUEUE_TEST_POSTGRES_DSN"


def server_url(variable: str) -> str:
    """Return the URL in `variable`, or skip (locally) / fail (in CI) when it is not set."""
    url = os.environ.get(variable)
    if url:
        return url
    message = f"{variable} is not set: run the tests with scripts/test to start the servers"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
