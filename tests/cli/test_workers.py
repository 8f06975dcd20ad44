"""`corequeue workers` and `corequeue queue info --throughput`: what the heartbeats and the
throughput counters in the store say."""

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


def count(folder: Path, queue: str, processed: int, retried: int, failed: int) -> None:
    async def record() -> None:
        driver = cq.SQLiteDriver(folder / "jobs.db", name=queue)
        await driver.count_finished(processed, retried, failed)
        await driver.close()

    asyncio.run(record())


def test_queue_info_throughput_sums_what_every_worker_counted(
    workdir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    count(workdir, "emails", 4, 1, 0)
    count(workdir, "emails", 2, 0, 1)

    code = main(["queue", "info", "--throughput", "5", "--json"])

    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "default": {"processed": 0, "retried": 0, "failed": 0},
        "emails": {"processed": 6, "retried": 1, "failed": 1},
    }


def test_queue_info_throughput_table_shows_a_rate(
    workdir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    count(workdir, "emails", 10, 0, 0)

    code = main(["queue", "info", "-q", "emails", "--throughput", "5"])

    output = capsys.readouterr().out
    assert code == 0
    row = next(line for line in output.splitlines() if "emails" in line and "│" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["emails", "10", "0", "0", "2.0"]
