"""Any command line and any configuration file: success, or exit code 2 with one line saying why.

Hypothesis builds argument lists from the commands' own flags and values mixed with any text,
and configuration files with any value under any key. `main()` must never raise, and every
refusal is exit code 2 with exactly one line (`error: ...`, or one JSON object with `--json`).
The worker and the dashboard are left out: given valid arguments they run until stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corequeue.cli import main

CONFIG = "queue:\n  default: {path: jobs.db}\n  fast: {driver: memory}\n"

COMMANDS = [
    ["queue", "info"],
    ["queue", "reload"],
    ["queue", "flush"],
    ["queue", "periodic"],
    ["migrate"],
    ["queue"],
]
FLAGS = ["-q", "--queue", "-c", "--channel", "--config", "--json", "--yes", "--help", "-h"]
FLAGS += ["--forget"]
VALUES = ["default", "fast", "nope", "failed", "timeout", "waiting", "", "corequeue.yaml", "-"]
VALUES += ["a:b", "beat"]
TOKENS = st.sampled_from(FLAGS) | st.sampled_from(VALUES) | st.text(max_size=12)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a configuration of one SQLite and one in-memory queue."""
    for variable in ("COREQUEUE_CONFIG", "COREQUEUE_APP"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "corequeue.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check_exit(code: int, out: str, err: str, as_json: bool) -> None:
    """Exit 0, or 2 with one line; 1 only for a flush not confirmed or nothing to forget."""
    if code == 0:
        return
    message = out if as_json else err
    if code == 1:
        assert "not flushed: confirm with --yes" in message or "nothing forgotten" in message
        return
    assert code == 2
    assert message.count("\n") == 1, message
    if as_json:
        assert json.loads(message)["exit_code"] == 2
    else:
        assert message.startswith("error: ")


@FUZZ
@given(command=st.sampled_from(COMMANDS), tokens=st.lists(TOKENS, max_size=6))
def test_any_flags_give_success_or_exit_2_with_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: list[str], tokens: list[str]
) -> None:
    capsys.readouterr()
    argv = [*command, *tokens]

    code = main(argv)

    captured = capsys.readouterr()
    check_exit(code, captured.out, captured.err, "--json" in argv)


CONFIG_VALUES = st.sampled_from(
    [".nan", ".inf", "1.0e+30", "-1", "0", "mysql", "'redis://:a/b@c:1/0'", "[1]", "{a: 1}"]
) | st.text(max_size=12).map(json.dumps)


@FUZZ
@given(
    key=st.sampled_from(["driver", "parallelism", "checkQueueLengthIntervalSecond", "path"]),
    value=CONFIG_VALUES,
    as_json=st.booleans(),
)
def test_any_configuration_value_gives_success_or_exit_2_with_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, as_json: bool
) -> None:
    (workdir / "odd.yaml").write_text(f"queue:\n  q:\n    driver: memory\n    {key}: {value}\n")
    capsys.readouterr()
    argv = ["queue", "info", "--config", "odd.yaml", *(["--json"] if as_json else [])]

    code = main(argv)

    captured = capsys.readouterr()
    check_exit(code, captured.out, captured.err, as_json)
    assert "a/b" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["queue"],
            "error: missing command: one of flush, info, periodic, reload (see 'corequeue queue",
        ),
        (["queue", "info", "--bogus"], "error: No such option '--bogus'."),
        (["queue", "info", "--config", "a\x00b"], "no such file (named by --config)"),
    ],
)
def test_usage_errors_are_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    code = main(argv)

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert line in err
