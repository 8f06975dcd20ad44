"""`corequeue dashboard`: refuses to expose itself without credentials, serves with uvicorn."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from corequeue.cli import main
from corequeue.cli.dashboard import PASSWORD_VARIABLE, TOKEN_VARIABLE

TOKEN = "tok-7d1e0c5b-never-printed"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("COREQUEUE_CONFIG", TOKEN_VARIABLE, PASSWORD_VARIABLE):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "corequeue.yaml").write_text("queue:\n  default: {path: jobs.db}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "dashboard.internal"])
def test_refuses_a_reachable_address_without_credentials(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dashboard", "--host", host, "--port", "1"])

    assert code == 2
    error = capsys.readouterr().err
    assert f"refusing to serve the dashboard on {host}" in error
    assert TOKEN_VARIABLE in error
    assert PASSWORD_VARIABLE in error


@pytest.mark.usefixtures("workdir")
def test_refuses_an_empty_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "")

    assert main(["dashboard", "--host", "0.0.0.0"]) == 2
    assert "refusing" in capsys.readouterr().err


@asynccontextmanager
async def dashboard_process(
    folder: Path, *args: str, env: dict[str, str]
) -> AsyncIterator[tuple[str, list[str]]]:
    """Run `corequeue dashboard --port 0 ARGS`; yield its URL and the lines it printed so far.

    Stops it with SIGTERM afterwards and checks that it exits cleanly.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "corequeue.cli",
        "dashboard",
        "--port",
        "0",
        *args,
        cwd=folder,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not (found := re.search(r"running on (http://\S+)", "".join(lines))):
                line = (await process.stdout.readline()).decode()
                assert line, f"the dashboard exited: {''.join(lines)}"
                lines.append(line)
        yield found.group(1), lines
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest, _ = await process.communicate()
        lines.append(rest.decode())
    assert process.returncode == 0, "".join(lines)


async def test_serves_the_dashboard_behind_a_token_it_never_prints(workdir: Path) -> None:
    async with (
        dashboard_process(workdir, env={TOKEN_VARIABLE: TOKEN}) as (url, lines),
        httpx.AsyncClient(base_url=url) as client,
    ):
        anonymous = await client.get("/api/info")
        admitted = await client.get("/api/info", headers={"authorization": f"Bearer {TOKEN}"})

    assert url.startswith("http://127.0.0.1:")
    assert anonymous.status_code == 401
    assert admitted.json() == {
        "default": {
            "completed": 0,
            "delayed": 0,
            "failed": 0,
            "reserved": 0,
            "timeout": 0,
            "waiting": 0,
        }
    }
    printed = "".join(lines)
    assert "queues default; token" in printed
    assert TOKEN not in printed


async def test_serves_without_payloads_when_told(workdir: Path) -> None:
    async with (
        dashboard_process(workdir, "--no-payloads", env={}) as (url, _),
        httpx.AsyncClient(base_url=url) as client,
    ):
        page = await client.get("/")

    assert page.status_code == 200
    assert "payloads hidden" in page.text


async def test_answers_only_to_loopback_names_unless_allowed_hosts_are_given(
    workdir: Path,
) -> None:
    async with (
        dashboard_process(workdir, env={}) as (plain_url, _),
        dashboard_process(workdir, "--allowed-host", "queues.example.test", env={}) as (url, _),
        httpx.AsyncClient() as client,
    ):
        loopback = await client.get(f"{plain_url}/")
        rebound = await client.get(f"{plain_url}/", headers={"host": "rebound.example"})
        named = await client.get(f"{url}/", headers={"host": "queues.example.test"})
        other = await client.get(f"{url}/")

    assert (loopback.status_code, rebound.status_code) == (200, 400)
    assert (named.status_code, other.status_code) == (200, 400)


def test_the_all_extra_installs_the_dashboard() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]

    (everything,) = extras["all"]
    named = everything.partition("[")[2].rstrip("]").split(",")
    assert "web" in named
