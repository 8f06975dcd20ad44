"""`corequeue workers`: the live workers of each queue, as a table and as JSON."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import corequeue as cq
from corequeue.cli import main
from tests.cli.test_main import workdir  # noqa: F401 (the fixture)

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def beat(folder: Path, queue: str, worker_id: str, running: int) -> None:
    async def record() -> None:
        driver = cq.SQLiteDriver(folder / "jobs.db", name=queue)
        await driver.beat(cq.WorkerInfo(worker_id, "box", 77, STARTED, STARTED, running))
        await driver.close()

    asyncio.run(record())


def test_workers_json_lists_each_queue_s_live_workers(
    workdir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    beat(workdir, "emails", "box:77:ab", running=2)

    code = main(["workers", "--json"])

    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert found["default"] == []
    (worker,) = found["emails"]
    assert {key: worker[key] for key in ("id", "hostname", "pid", "running", "started_at")} == {
        "id": "box:77:ab",
        "hostname": "box",
        "pid": 77,
        "running": 2,
        "started_at": "2026-01-02T03:04:05+00:00",
    }


def test_workers_table_shows_a_row_per_worker(
    workdir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    beat(workdir, "emails", "box:77:ab", running=1)

    code = main(["workers", "-q", "emails"])

    output = capsys.readouterr().out
    assert code == 0
    row = next(line for line in output.splitlines() if "box:77:ab" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:4] == ["emails", "box:77:ab", "box", "77"]
    assert cells[-1] == "1"
