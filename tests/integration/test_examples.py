"""The seed's examples run as scripts and print exactly what the Go documentation shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("simple.py", "100\nJob\n"),
        ("defer.py", "hello world\n"),
        ("faulty.py", "faulty\nfaulty\nhello world\n"),
        ("minimum.py", "foo\n"),
        (
            "flow_control.py",
            "first to start: urgent\nmost jobs of one tenant at once: 1\njobs run: 7\n",
        ),
        (
            "periodic.py",
            "heartbeat ran\n" * 3
            + "heartbeat: every 0:00:01 UTC, misfire skip\n"
            + "nightly-report: 0 3 * * * Europe/Berlin, misfire once, next run at 03:00\n",
        ),
    ],
)
def test_example_prints_its_documented_output(script: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
