"""`corequeue queue periodic`: configured and stored schedules, `--forget`, exit codes."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from corequeue.cli import main
from corequeue.config import load_config
from corequeue.factory import QueueFactory
from corequeue.job import PersistedJob
from corequeue.periodic import slot_job_id
from tests.cli.support import Project

PERIODIC = [
    {
        "name": "nightly",
        "schedule": "0 3 * * *",
        "job": "app.Nightly",
        "tz": "Europe/Berlin",
        "misfire": "once",
    },
    {"name": "beat", "everySecond": 30, "job": "app.Beat", "payload": {"source": "cron"}},
]
CONFIG = {"queue": {"default": {"path": "jobs.db", "periodic": PERIODIC}, "emails": {}}}
SLOT_MS = 1_717_200_000_000
"""2024-06-01 00:00:00 UTC: a slot in the past of every store's clock."""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory whose corequeue.yaml declares two schedules on queue `default`."""
    for variable in ("COREQUEUE_CONFIG", "COREQUEUE_APP"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "corequeue.yaml").write_text(json.dumps(CONFIG))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def enqueue_slots(config: Path, queue: str, slots: dict[str, int]) -> None:
    """Record `slots` (name -> slot ms) in the store as workers would, pushing their jobs."""
    asyncio.run(_enqueue_slots(config, queue, slots))


async def _enqueue_slots(config: Path, queue: str, slots: dict[str, int]) -> None:
    factory = QueueFactory(load_config(config, environ={}), prometheus=False)
    try:
        driver = factory.make(queue).driver
        for name, slot_ms in slots.items():
            job = PersistedJob(id=slot_job_id(name, slot_ms), type="app.Job", value=b"{}")
            assert await driver.enqueue_slot(name, slot_ms, job)
    finally:
        await factory.close()


def json_out(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_lists_configured_schedules_with_next_and_last_run_and_stored_ones(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue_slots(workdir / "corequeue.yaml", "default", {"beat": SLOT_MS, "legacy": SLOT_MS})

    code = main(["queue", "periodic", "--json"])

    listed = json_out(capsys)
    assert code == 0
    assert listed["emails"] == []
    nightly, beat, legacy = listed["default"]
    assert nightly["name"] == "nightly"
    assert (nightly["schedule"], nightly["interval_seconds"]) == ("0 3 * * *", None)
    assert (nightly["tz"], nightly["misfire"], nightly["declared_in"]) == (
        "Europe/Berlin",
        "once",
        "configuration",
    )
    next_run = datetime.fromisoformat(nightly["next_run"])
    assert (next_run.hour, next_run.minute) == (3, 0)
    assert next_run > datetime.now(UTC)
    assert (nightly["last_run"], nightly["last_job_id"]) == (None, None)
    assert (beat["schedule"], beat["interval_seconds"]) == (None, 30.0)
    assert beat["last_run"] == "2024-06-01T00:00:00+00:00"
    assert beat["last_job_id"] == f"periodic:beat:{SLOT_MS}"
    assert legacy == {
        "name": "legacy",
        "declared_in": "code",
        "schedule": None,
        "interval_seconds": None,
        "tz": None,
        "misfire": None,
        "next_run": None,
        "last_run": "2024-06-01T00:00:00+00:00",
        "last_job_id": f"periodic:legacy:{SLOT_MS}",
    }


def test_table_shows_each_schedule_and_says_a_stored_one_is_declared_in_code(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue_slots(workdir / "corequeue.yaml", "default", {"legacy": SLOT_MS})

    code = main(["queue", "periodic", "-q", "default", "-q", "emails"])

    output = capsys.readouterr().out
    rows = {
        cells[1]: cells
        for line in output.splitlines()
        if line.startswith("│")
        for cells in [[cell.strip() for cell in line.split("│")[1:-1]]]
    }
    assert code == 0
    assert rows["nightly"][:5] == ["default", "nightly", "0 3 * * *", "Europe/Berlin", "once"]
    assert rows["nightly"][5].endswith((" CET", " CEST"))
    assert rows["beat"][2:4] == ["every 0:00:30", "UTC"]
    assert rows["legacy"][5:] == ["declared in code", "2024-06-01 00:00:00 UTC"]
    assert rows["no schedules"][0] == "emails"


def test_forget_deletes_a_stored_schedule_with_a_warning(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue_slots(workdir / "corequeue.yaml", "default", {"legacy": SLOT_MS})

    code = main(["queue", "periodic", "--forget", "legacy"])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == "default: forgot schedule 'legacy'\n"
    assert captured.err.startswith("warning: forgot schedule 'legacy': a worker that still")
    assert main(["queue", "periodic", "-q", "default", "--json"]) == 0
    assert [row["name"] for row in json_out(capsys)["default"]] == ["nightly", "beat"]


def test_forget_of_a_configured_schedule_also_warns_that_workers_keep_running_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue_slots(workdir / "corequeue.yaml", "default", {"beat": SLOT_MS})

    code = main(["queue", "periodic", "--forget", "beat", "--json"])

    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out) == {"default": {"forgot": "beat", "found": True}}
    warnings = captured.err.splitlines()
    assert warnings[0] == (
        "warning: the configuration of queue default declares schedule 'beat': its workers "
        "keep running it; remove it from the configuration too"
    )
    assert warnings[1].startswith("warning: forgot schedule 'beat'")


def test_forget_of_a_schedule_the_store_does_not_know_exits_with_1(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["queue", "periodic", "--forget", "nope", "-q", "default", "-q", "emails"])

    assert code == 1
    assert capsys.readouterr().err == (
        "error: no stored schedule 'nope' in queue default, emails: nothing forgotten\n"
    )


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize("name", ["a:b", "", "x" * 201])
def test_forget_of_a_name_no_schedule_can_have_exits_with_2(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["queue", "periodic", "--forget", name, "--json"])

    assert code == 2
    assert json_out(capsys)["error"].startswith("--forget expects a schedule name")


async def test_list_and_forget_on_every_store(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.settings["periodic"] = [{"name": "beat", "everySecond": 1, "job": "app.Beat"}]
    project.write_config()
    slot_ms = int(time.time() * 1000) - 5_000
    await asyncio.to_thread(
        enqueue_slots, project.config_file, project.queue, {"beat": slot_ms, "old": slot_ms}
    )
    argv = ["queue", "periodic", "--config", str(project.config_file), "-q", project.queue]

    listed = await asyncio.to_thread(main, [*argv, "--json"])
    rows = json_out(capsys)[project.queue]
    forgotten = await asyncio.to_thread(main, [*argv, "--forget", "old"])
    capsys.readouterr()
    await asyncio.to_thread(main, [*argv, "--forget", "beat"])
    capsys.readouterr()
    again = await asyncio.to_thread(main, [*argv, "--json"])

    assert (listed, forgotten, again) == (0, 0, 0)
    assert [(row["name"], row["declared_in"]) for row in rows] == [
        ("beat", "configuration"),
        ("old", "code"),
    ]
    assert [row["last_job_id"] for row in rows] == [
        f"periodic:beat:{slot_ms}",
        f"periodic:old:{slot_ms}",
    ]
    after = json_out(capsys)[project.queue]
    assert [(row["name"], row["last_run"], row["last_job_id"]) for row in after] == [
        ("beat", None, None)
    ]
