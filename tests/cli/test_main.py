"""`main(argv)` in this process: output, configuration lookup and exit codes, quickly."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

import corequeue as cq
from corequeue.cli import main
from corequeue.job import PersistedJob
from tests.cli.worker_app import LEDGER_VARIABLE
from tests.support.servers import POSTGRES_DSN_VAR, server_url

CONFIG = "queue:\n  default: {path: jobs.db}\n  emails: {path: jobs.db, parallelism: 2}\n"
"""Two SQLite queues; the folder of the tests is named like rich markup, `[bold]`, on purpose."""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding corequeue.yaml with two SQLite queues, and a clean env."""
    for variable in ("COREQUEUE_CONFIG", "COREQUEUE_APP"):
        monkeypatch.delenv(variable, raising=False)
    folder = tmp_path / "[bold]"
    folder.mkdir()
    (folder / "corequeue.yaml").write_text(CONFIG)
    monkeypatch.chdir(folder)
    monkeypatch.setenv(LEDGER_VARIABLE, str(folder / "ledger.txt"))
    return folder


def park(folder: Path, queue: str, failed: int = 0, waiting: int = 0) -> None:
    """Put jobs straight into `failed` and `waiting` of a queue in folder/jobs.db."""

    async def fill() -> None:
        driver = cq.SQLiteDriver(folder / "jobs.db", name=queue)
        for n in range(failed):
            await driver.push(PersistedJob(id=f"f{n}", type="t", value=b"1"), timedelta(0))
            await driver.fail(await driver.pop())
        for n in range(waiting):
            await driver.push(PersistedJob(id=f"w{n}", type="t", value=b"1"), timedelta(0))
        await driver.close()

    asyncio.run(fill())


def json_out(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


# --- lookup and info ---------------------------------------------------------------------------


@pytest.mark.usefixtures("workdir")
def test_info_reads_corequeue_yaml_of_the_working_directory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["queue", "info", "--json"])

    assert code == 0
    assert json_out(capsys) == {
        "default": {
            "waiting": 0,
            "delayed": 0,
            "reserved": 0,
            "failed": 0,
            "timeout": 0,
            "completed": 0,
        },
        "emails": {
            "waiting": 0,
            "delayed": 0,
            "reserved": 0,
            "failed": 0,
            "timeout": 0,
            "completed": 0,
        },
    }


def test_info_table_shows_counts_and_the_store(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line per queue, the store's path unfolded
    park(workdir, "emails", failed=2, waiting=1)

    code = main(["queue", "info", "-q", "emails"])

    output = capsys.readouterr().out
    assert code == 0
    row = next(line for line in output.splitlines() if "emails" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells == [
        "emails",
        f"sqlite {workdir / 'jobs.db'}",
        "1",
        "0",
        "0",
        "2",
        "0",
        "0",
        "running",
        "none",
    ]


def test_info_table_shows_a_paused_queue_and_its_limits(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    limits = "{concurrency: 3, rate: 10/s}"
    (workdir / "corequeue.yaml").write_text(
        f"queue:\n  emails: {{path: jobs.db, limits: {limits}}}\n"
    )
    assert main(["queue", "pause", "-q", "emails"]) == 0
    capsys.readouterr()

    code = main(["queue", "info", "-q", "emails", "-c", "waiting"])

    output = capsys.readouterr().out
    assert code == 0
    row = next(line for line in output.splitlines() if "emails" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[2:] == ["0", "paused", "concurrency 3, rate 10/s"]


def test_info_shows_the_chosen_channels(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    park(workdir, "emails", failed=2, waiting=1)

    code = main(["queue", "info", "-q", "emails", "-c", "failed", "-c", "waiting", "--json"])

    assert code == 0
    assert json_out(capsys) == {"emails": {"waiting": 1, "failed": 2}}


def test_config_variable_comes_before_the_working_directory(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = workdir / "other.toml"
    other.write_text('[queue.reports]\ndriver = "memory"\n')
    monkeypatch.setenv("COREQUEUE_CONFIG", str(other))

    assert main(["queue", "info", "--json"]) == 0
    assert list(json_out(capsys)) == ["reports"]  # type: ignore[call-overload]
    assert main(["queue", "info", "--json", "--config", "corequeue.yaml"]) == 0
    assert list(json_out(capsys)) == ["default", "emails"]  # type: ignore[call-overload]


def test_without_any_file_one_default_queue_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COREQUEUE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    assert main(["queue", "info", "--json"]) == 0
    assert list(json_out(capsys)) == ["default"]  # type: ignore[call-overload]
    assert (tmp_path / "corequeue.db").exists()


def test_environment_overrides_apply_to_commands(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COREQUEUE_QUEUE__EMAILS__PARALLELISM", "-3")

    code = main(["queue", "info"])

    assert code == 2
    assert (
        "environment variable COREQUEUE_QUEUE__EMAILS__PARALLELISM: queue.emails.parallelism: "
        "expected a whole number from 1 to 10000, got -3" in capsys.readouterr().err
    )


# --- reload and flush --------------------------------------------------------------------------


def test_reload_moves_failed_jobs_back_and_reports_how_many(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    park(workdir, "emails", failed=3)

    code = main(["queue", "reload", "-q", "emails"])

    assert code == 0
    assert "emails: moved 3 jobs back to waiting (timeout 0, failed 3)" in capsys.readouterr().out
    assert main(["queue", "info", "-q", "emails", "--json"]) == 0
    assert json_out(capsys) == {
        "emails": {
            "waiting": 3,
            "delayed": 0,
            "reserved": 0,
            "failed": 0,
            "timeout": 0,
            "completed": 0,
        }
    }


def test_reload_json_counts_by_channel(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    park(workdir, "default", failed=1)

    assert main(["queue", "reload", "-c", "failed", "--json"]) == 0
    assert json_out(capsys) == {"default": {"failed": 1}}


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize("channel", ["waiting", "delayed", "reserved"])
def test_reload_of_another_channel_is_refused_with_exit_code_2(
    channel: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["queue", "reload", "-c", channel])

    assert code == 2
    expected = f"only the failed and timeout channels can be reloaded, not '{channel}'"
    assert expected in capsys.readouterr().err


def test_flush_needs_confirmation_without_a_terminal(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    park(workdir, "default", failed=2)

    refused = main(["queue", "flush"])
    refused_err = capsys.readouterr().err
    flushed = main(["queue", "flush", "--yes", "--json"])

    assert refused == 1
    assert "not flushed: confirm with --yes" in refused_err
    assert "failed (2 jobs)" in refused_err
    assert flushed == 0
    assert json_out(capsys) == {"default": {"timeout": 0, "failed": 2}}
    assert main(["queue", "info", "-q", "default", "--json"]) == 0
    assert json_out(capsys) == {
        "default": {
            "waiting": 0,
            "delayed": 0,
            "reserved": 0,
            "failed": 0,
            "timeout": 0,
            "completed": 0,
        }
    }


# --- errors and exit codes ---------------------------------------------------------------------


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["queue", "info", "-q", "nope"],
            "unknown queue 'nope': the configured queues are default, emails",
        ),
        (
            ["queue", "info", "--config", "missing.yaml"],
            "missing.yaml: no such file (named by --config)",
        ),
        (["queue", "flush", "-c", "everything"], "'everything' is not one of"),
        (["queue", "nonsense"], "No such command 'nonsense'"),
        (["worker"], "the worker needs --app MODULE:ATTR (or $COREQUEUE_APP)"),
        (["worker", "--app", "no_colon"], "--app expects MODULE:ATTR"),
        (["worker", "--app", "no_such_module:x"], "cannot import no_such_module"),
        (
            ["worker", "--app", "tests.cli.worker_app:nope"],
            "tests.cli.worker_app has no attribute nope",
        ),
        (
            ["worker", "--app", "tests.cli.factory_app:not_a_target"],
            "is a str; expected a QueueFactory, an App, a Queue, or a callable",
        ),
        (
            ["worker", "--app", "tests.cli.factory_app:factory", "--config", "corequeue.yaml"],
            "--config cannot be used with --app tests.cli.factory_app:factory",
        ),
    ],
)
def test_usage_and_config_errors_exit_with_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(argv)

    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("workdir")
def test_a_module_that_fails_to_import_exits_with_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(LEDGER_VARIABLE)
    monkeypatch.delitem(sys.modules, "tests.cli.factory_app", raising=False)

    code = main(["worker", "--app", "tests.cli.factory_app:factory"])

    assert code == 1
    assert "importing tests.cli.factory_app raised KeyError('COREQUEUE_TEST_LEDGER')" in (
        capsys.readouterr().err
    )


def test_a_module_whose_own_import_is_missing_exits_with_1(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "needs_more.py").write_text("import no_such_dependency_anywhere\n")

    code = main(["worker", "--app", "needs_more:setup"])

    err = capsys.readouterr().err
    assert code == 1
    assert "importing needs_more raised ModuleNotFoundError" in err
    assert "Traceback" in err


def test_errors_are_json_with_json(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["queue", "info", "-q", "nope", "--json"])

    assert code == 2
    error = json_out(capsys)
    assert isinstance(error, dict)
    assert error["exit_code"] == 2
    assert error["error"].startswith("unknown queue 'nope'")


def test_a_store_that_is_down_exits_with_1_and_hides_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "down.yaml"
    config.write_text(
        "queue: {q: {redisName: down}}\nredis: {down: {url: 'redis://app:hunter2@127.0.0.1:1/0'}}"
    )

    code = main(["queue", "info", "--config", str(config)])

    err = capsys.readouterr().err
    assert code == 1
    assert "is unavailable" in err
    assert "hunter2" not in err


def test_help_and_version_exit_with_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "worker" in capsys.readouterr().out
    assert main(["queue", "--help"]) == 0
    assert "reload" in capsys.readouterr().out
    assert main(["--version"]) == 0


# --- migrate -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("workdir")
def test_migrate_has_nothing_to_do_for_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "-q", "emails"]) == 0
    assert "emails: uses sqlite, nothing to migrate" in capsys.readouterr().out


def test_migrate_brings_a_postgres_schema_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = server_url(POSTGRES_DSN_VAR)
    schema = f"cli_{uuid.uuid4().hex[:12]}"
    config = tmp_path / "pg.yaml"
    config.write_text(f"queue: {{jobs: {{driver: postgres, dsn: '{dsn}', schema: {schema}}}}}\n")

    first = main(["migrate", "--config", str(config), "--json"])
    applied = json_out(capsys)
    second = main(["migrate", "--config", str(config)])

    assert (first, second) == (0, 0)
    assert isinstance(applied, dict)
    assert applied["jobs"]["driver"] == "postgres"
    assert applied["jobs"]["applied"]
    assert "jobs: schema already up to date" in capsys.readouterr().out
