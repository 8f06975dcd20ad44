"""The integration examples run and print what their docstrings show."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "middleware.py",
            "dispatching builtins.str to default\nattempt 1 of request r-42\nhello\n",
        ),
        (
            "opentelemetry_tracing.py",
            "POST /signup (SERVER)\n  mail publish (PRODUCER)\n    mail process (CONSUMER)\n",
        ),
        (
            "sentry_errors.py",
            "event: ValueError: card declined; job builtins.int attempt 1 of 1 on queue billing\n",
        ),
    ],
)
def test_example_prints_its_documented_output(script: str, expected: str) -> None:
    environment = {"PATH": "/usr/bin:/bin"}  # no SENTRY_DSN: the Sentry example prints events
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_the_fastapi_example_dispatches_from_its_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the example's SQLite file lands here
    monkeypatch.syspath_prepend(str(EXAMPLES))
    app = importlib.import_module("fastapi_app").app

    with TestClient(app, base_url="http://localhost") as client:  # the dashboard's default host
        response = client.post("/signup/ada@example.com")
        dashboard = client.get("/queues/")

    assert response.status_code == 200
    assert len(response.json()["job"]) == 32
    assert dashboard.status_code == 200
    assert (tmp_path / "emails.db").exists()
