"""The Factory and Metrics examples run as scripts and print exactly what their docstrings show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

METRICS_OUTPUT = """\
hello world
app_env_queue_length{channel="waiting",queue="default"} 0.0
app_env_queue_length{channel="delayed",queue="default"} 0.0
app_env_queue_length{channel="reserved",queue="default"} 0.0
app_env_queue_length{channel="failed",queue="default"} 0.0
app_env_queue_length{channel="timeout",queue="default"} 0.0
app_env_queue_length{channel="completed",queue="default"} 0.0
app_env_jobs_processed_total{job_type="__main__.MockMetricsData",queue="default"} 1.0
"""


@pytest.mark.parametrize(
    ("script", "expected"),
    [("factory.py", "hello world\n"), ("metrics.py", METRICS_OUTPUT)],
)
def test_example_prints_its_documented_output(script: str, expected: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    assert list(tmp_path.iterdir()) == []  # every store lived in the example's scratch folder


def test_example_docstrings_show_the_output_the_test_checks() -> None:
    for script, expected in (("factory.py", "hello world\n"), ("metrics.py", METRICS_OUTPUT)):
        docstring = (EXAMPLES / script).read_text().split('"""')[1]
        shown = "\n".join(line.strip() for line in docstring.split("Prints:\n")[1].splitlines())

        assert shown.strip() == expected.strip(), script
