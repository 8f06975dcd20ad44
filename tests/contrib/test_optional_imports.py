"""Each integration's library is optional: `import corequeue` (and its core modules) never
imports OpenTelemetry, Sentry, FastAPI or Django; importing an integration does."""

from __future__ import annotations

import subprocess
import sys

import pytest

INTEGRATION_LIBRARIES = ("opentelemetry", "sentry_sdk", "fastapi", "django")


def imported_after(statement: str) -> set[str]:
    """Return the integration libraries loaded by running `statement` in a fresh interpreter."""
    probe = (
        f"{statement}\n"
        "import sys\n"
        f"print(' '.join(name for name in {INTEGRATION_LIBRARIES!r} if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_import_corequeue_imports_no_integration_library() -> None:
    statement = (
        "import corequeue, corequeue.middleware, corequeue.contrib, corequeue.factory, "
        "corequeue.cli, corequeue.web"
    )

    assert imported_after(statement) == set()


@pytest.mark.parametrize(
    ("module", "library"),
    [
        ("corequeue.contrib.opentelemetry", "opentelemetry"),
        ("corequeue.contrib.sentry", "sentry_sdk"),
        ("corequeue.contrib.fastapi", None),
        ("corequeue.contrib.django", "django"),
    ],
)
def test_an_integration_imports_only_its_own_library(module: str, library: str | None) -> None:
    expected = set() if library is None else {library}

    assert imported_after(f"import {module}") == expected
