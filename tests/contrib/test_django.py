"""The Django integration: the test project's own tests under Django's test runner (SQLite and
PostgreSQL), and `manage.py corequeue_worker` running a job.

The project is tests/django_project; its tests (rollback leaves no job, commit leaves one) are
in tests/django_project/shop/tests.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

import corequeue as cq
from tests.django_project.shop.payloads import SendReceipt
from tests.support.driver_postgres import postgres_dsn

ROOT = Path(__file__).parents[2]
MANAGE = ["-m", "tests.django_project.manage"]


def project_environment(tmp_path: Path, database: str) -> dict[str, str]:
    return {
        **os.environ,
        "COREQUEUE_DJANGO_DATABASE": database,
        "COREQUEUE_DJANGO_JOBS_FILE": str(tmp_path / "jobs.db"),
        "COREQUEUE_DJANGO_LEDGER": str(tmp_path / "ledger.txt"),
        "COREQUEUE_DJANGO_TEST_NAME": f"corequeue_django_{uuid.uuid4().hex[:12]}",
    }


async def run_manage(environment: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *MANAGE,
        *args,
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_the_projects_tests_pass_under_djangos_runner(tmp_path: Path, database: str) -> None:
    environment = project_environment(tmp_path, database)
    if database == "postgres":
        environment["COREQUEUE_TEST_POSTGRES_DSN"] = postgres_dsn()

    code, output = await run_manage(
        environment, "test", "tests.django_project.shop", "--noinput", "-v", "2"
    )

    assert code == 0, output
    assert "Ran 6 tests" in output
    assert passed("test_a_rollback_leaves_no_job", output)
    assert passed("test_a_commit_leaves_one_job_no_worker_sees_before", output)
    if database == "postgres":
        assert passed("test_on_postgres_the_job_is_a_row_of_the_transaction_itself", output)


def passed(test: str, output: str) -> bool:
    """Whether Django's runner (verbosity 2) reported `test` as ok."""
    return any(
        line.startswith(f"{test} (") and line.endswith(") ... ok") for line in output.splitlines()
    )


async def test_the_worker_command_runs_jobs_with_the_apps_listeners(tmp_path: Path) -> None:
    environment = project_environment(tmp_path, "sqlite")
    queue = cq.Queue(cq.SQLiteDriver(tmp_path / "jobs.db"))
    await queue.dispatch(SendReceipt(7))
    await queue.close()
    ledger = tmp_path / "ledger.txt"

    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        *MANAGE,
        "corequeue_worker",
        "-q",
        "default",
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(60):
            while not (ledger.exists() and ledger.read_text() == "done 7\n"):
                await asyncio.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            output, _ = await worker.communicate()

    assert worker.returncode == 0, output.decode()
    assert "consuming default" in output.decode()


async def test_a_bad_setting_stops_the_worker_command_with_a_clear_error(tmp_path: Path) -> None:
    environment = project_environment(tmp_path, "sqlite")

    code, output = await run_manage(environment, "corequeue_worker", "-q", "nope")

    assert code == 1
    assert "nope" in output
