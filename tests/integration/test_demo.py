"""README command 1: the demo runs immediate, deferred and retried jobs to completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_every_job_and_leaves_the_queue_empty(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "corequeue.demo", "--db", str(tmp_path / "demo.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"COLUMNS": "200", "PATH": ""},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("✓ resized") == 6
    assert result.stdout.count("✓ reminder") == 4
    assert result.stdout.count("✓ charged order") == 2
    assert result.stdout.count("↻ order job") == 4
    assert "nothing left in the queue: True" in result.stdout
