"""`corequeue queue pause|resume`: the flag is stored, so a Queue of the same store sees it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import corequeue as cq
from corequeue.cli import main

CONFIG = "queue:\n  default: {path: jobs.db}\n  emails: {path: jobs.db}\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("COREQUEUE_CONFIG", raising=False)
    (tmp_path / "corequeue.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def is_paused(folder: Path, queue: str) -> bool:
    async def read() -> bool:
        driver = cq.SQLiteDriver(folder / "jobs.db", name=queue)
        try:
            return await driver.is_paused()
        finally:
            await driver.close()

    return asyncio.run(read())


def test_pause_stores_the_flag_for_the_chosen_queue_only(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["queue", "pause", "-q", "emails"])

    assert code == 0
    assert "emails: paused" in capsys.readouterr().out
    assert is_paused(workdir, "emails")
    assert not is_paused(workdir, "default")


def test_resume_clears_the_flag_and_reports_json(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["queue", "pause"]) == 0
    capsys.readouterr()

    code = main(["queue", "resume", "--json"])

    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"default": {"paused": False}}
    assert not is_paused(workdir, "default")
