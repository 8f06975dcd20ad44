"""The real `corequeue` command as a subprocess, over SQLite and Redis.

The worker processes jobs, `queue info` counts them, `queue reload` moves failed jobs back to
run again, `queue flush` empties channels, and bad configurations stop every command with the
promised message and exit code.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

import corequeue as cq
from tests.cli.support import CLI, Project, Worker, cli_environment, eventually, run_cli
from tests.cli.worker_app import Greeting


async def test_worker_processes_jobs_and_stops_cleanly_on_sigterm(project: Project) -> None:
    await project.dispatch(*(Greeting(f"hello {n}") for n in range(5)))

    with Worker(project) as worker:
        await eventually(lambda: len(project.ran()) == 5, "five jobs to run")
        code = worker.stop()

    assert code == 0, worker.errors()
    assert sorted(project.ran()) == [f"hello {n}" for n in range(5)]
    assert (await project.info()).pending == 0
    assert f"worker started: {project.queue} (" in worker.output()
    assert "worker stopped" in worker.output()


@pytest.mark.parametrize(
    "app", ["factory", "app", "queue", "setup_async"], ids=lambda attr: f"--app {attr}"
)
async def test_worker_runs_every_kind_of_app_target(sqlite_project: Project, app: str) -> None:
    await sqlite_project.dispatch(Greeting("hello"))

    with Worker(sqlite_project, app=f"tests.cli.factory_app:{app}") as worker:
        await eventually(lambda: sqlite_project.ran() == ["hello"], "the job to run")
        assert worker.stop() == 0, worker.errors()


async def test_info_shows_the_count_of_each_channel(project: Project) -> None:
    await project.dispatch(Greeting("now"), Greeting("now too"))
    await project.dispatch(cq.adjust(Greeting("later"), defer=timedelta(hours=1)))

    as_json = run_cli("queue", "info", "--json", cwd=project.folder)
    as_table = run_cli("queue", "info", "-q", project.queue, cwd=project.folder)

    assert as_json.returncode == 0, as_json.stderr
    counts = json.loads(as_json.stdout)[project.queue]
    assert counts == {
        "waiting": 2,
        "delayed": 1,
        "reserved": 0,
        "failed": 0,
        "timeout": 0,
        "completed": 0,
    }
    assert as_table.returncode == 0, as_table.stderr
    row = next(line for line in as_table.stdout.splitlines() if project.queue in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]][2:]
    assert cells == ["2", "1", "0", "0", "0", "0", "running", "none"]


async def test_reload_moves_failed_jobs_back_and_they_run(project: Project) -> None:
    broken = project.folder / "broken"
    broken.touch()
    await project.dispatch(Greeting("healed", fail_while=str(broken)), Greeting("fine"))

    with Worker(project) as worker:
        await eventually(lambda: project.ran() == ["fine"], "the healthy job to run")
        await eventually(_failed_count_is(project, 1), "the broken job to reach failed")
        broken.unlink()

        reload = run_cli("queue", "reload", "-q", project.queue, cwd=project.folder)

        await eventually(lambda: project.ran() == ["fine", "healed"], "the reloaded job to run")
        assert worker.stop() == 0, worker.errors()

    assert reload.returncode == 0, reload.stderr
    assert f"{project.queue}: moved 1 job back to waiting (timeout 0, failed 1)" in reload.stdout
    assert (await project.info()).failed == 0
    assert "RuntimeError" in worker.errors()


async def test_flush_empties_the_chosen_channels(project: Project) -> None:
    await project.dispatch(*(cq.adjust(Greeting("later"), defer=timedelta(hours=1)),) * 3)
    await project.dispatch(Greeting("waiting"))

    refused = run_cli("queue", "flush", "-q", project.queue, "-c", "delayed", cwd=project.folder)
    flushed = run_cli(
        "queue", "flush", "-q", project.queue, "-c", "delayed", "--yes", cwd=project.folder
    )

    assert refused.returncode == 1
    assert "not flushed: confirm with --yes" in refused.stderr
    assert flushed.returncode == 0, flushed.stderr
    assert f"{project.queue}: flushed delayed (3 jobs)" in flushed.stdout
    info = await project.info()
    assert (info.delayed, info.waiting) == (0, 1)


async def test_flush_without_a_terminal_never_reads_a_yes_from_stdin(project: Project) -> None:
    await project.dispatch(cq.adjust(Greeting("later"), defer=timedelta(hours=1)))

    refused = run_cli(
        "queue", "flush", "-q", project.queue, "-c", "delayed", cwd=project.folder, stdin="y\n"
    )

    assert refused.returncode == 1
    assert (await project.info()).delayed == 1


async def test_reload_of_another_channel_is_refused(project: Project) -> None:
    result = run_cli("queue", "reload", "-q", project.queue, "-c", "waiting", cwd=project.folder)

    assert result.returncode == 2
    assert "only the failed and timeout channels can be reloaded, not 'waiting'" in result.stderr


async def test_bad_config_stops_every_command_with_file_key_and_expectation(
    sqlite_project: Project,
) -> None:
    sqlite_project.settings["parallelism"] = -1
    sqlite_project.write_config()
    key = f"queue.{sqlite_project.queue}.parallelism"

    worker = ["worker", "--app", "tests.cli.worker_app:setup"]
    for command in (["queue", "info"], ["queue", "reload"], ["migrate"], worker):
        result = run_cli(*command, cwd=sqlite_project.folder)

        assert result.returncode == 2, command
        where = re.escape(str(sqlite_project.config_file))
        expected = rf"^error: {where}:\d+: {key}: expected a whole number from 1 to 10000, got -1$"
        assert re.fullmatch(expected, result.stderr.strip()), (command, result.stderr)


async def test_unknown_driver_and_redis_name_are_reported(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[queue.a]\ndriver = "mongo"\n')
    other = tmp_path / "other.yaml"
    other.write_text("queue:\n  b: {redisName: cache}\n")

    driver = run_cli("queue", "info", "--config", str(config), cwd=tmp_path)
    redis_name = run_cli("queue", "info", "--config", str(other), cwd=tmp_path)

    assert driver.returncode == redis_name.returncode == 2
    assert f"{config}:2: queue.a.driver: expected one of memory, sqlite" in driver.stderr
    assert f"{other}:2: queue.b.redisName: expected the name of a redis.<name>" in redis_name.stderr


def test_installed_command_runs(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "corequeue"

    result = subprocess.run(
        [str(command), "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert "worker" in result.stdout


def _failed_count_is(project: Project, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await project.info()).failed == count

    return check


@pytest.mark.parametrize(("answer", "left"), [("y", 0), ("n", 1)])
async def test_flush_on_a_terminal_asks_and_obeys_the_answer(
    sqlite_project: Project, answer: str, left: int
) -> None:
    await sqlite_project.dispatch(cq.adjust(Greeting("later"), defer=timedelta(hours=1)))
    result = flush_on_a_terminal(sqlite_project, answer)

    assert "Delete every job of queue" in result.stderr
    assert result.returncode == (0 if answer == "y" else 1), result.stderr
    assert (await sqlite_project.info()).delayed == left


def flush_on_a_terminal(project: Project, answer: str) -> subprocess.CompletedProcess[str]:
    """Run `queue flush -c delayed` with a terminal as stdin, already holding `answer`."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, f"{answer}\n".encode())
        return subprocess.run(
            [*CLI, "queue", "flush", "-q", project.queue, "-c", "delayed"],
            cwd=project.folder,
            env=cli_environment(),
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)


def test_worker_exits_with_1_when_the_metrics_port_is_taken(sqlite_project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])

        result = run_cli(
            "worker", "--app", "tests.cli.worker_app:setup", "--metrics-host", "127.0.0.1",
            "--metrics-port", port, cwd=sqlite_project.folder, ledger=sqlite_project.ledger,
        )  # fmt: skip

    assert result.returncode == 1
    assert f"error: cannot serve metrics on 127.0.0.1:{port}" in result.stderr


def test_worker_exits_with_1_when_the_app_set_up_raises(sqlite_project: Project) -> None:
    result = run_cli("worker", "--app", "tests.cli.worker_app:setup", cwd=sqlite_project.folder)

    assert result.returncode == 1
    assert "Traceback" in result.stderr  # where it failed, for the user to fix
    assert "error: --app tests.cli.worker_app:setup raised KeyError('COREQUEUE_TEST_LEDGER')" in (
        result.stderr
    )
