"""Helpers of the CLI tests: a project folder with a configuration, and the real CLI as a process.

A `Project` is a scratch folder holding `corequeue.yaml` for one queue on SQLite, Redis or
PostgreSQL (a queue name of its own, so tests never share jobs). `Worker` runs `corequeue
worker` on it as a subprocess with its output in files; `run_cli` runs any other command.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from corequeue.config import load_config
from corequeue.drivers.base import Channel, QueueInfo
from corequeue.factory import QueueFactory
from tests.cli.worker_app import LEDGER_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "corequeue.cli"]
DEADLINE_SECONDS = 30.0
"""How long a test waits for work that takes a second or two, before failing."""


def cli_environment(ledger: Path | None = None) -> dict[str, str]:
    """Return this process's environment without corequeue settings, tests importable."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not (
            key.startswith("COREQUEUE_")
            and ("__" in key or key in {"COREQUEUE_CONFIG", "COREQUEUE_APP"})
        )
    }
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    if ledger is not None:
        environ[LEDGER_VARIABLE] = str(ledger)
    return environ


def run_cli(
    *args: str, cwd: Path, stdin: str | None = None, ledger: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `corequeue ARGS` in `cwd` to completion; return its exit code and output."""
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=cli_environment(ledger),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        check=False,
    )


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], what: str | Callable[[], str]
) -> None:
    """Poll `check` until it is true; fail naming `what` (text, or a function of the moment)."""
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            while True:
                result = check()
                if result if isinstance(result, bool) else await result:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        described = what if isinstance(what, str) else what()
        raise AssertionError(f"timed out waiting for {described}") from None


@dataclass
class Project:
    """A folder with `corequeue.yaml` configuring one queue, and a ledger its jobs write to."""

    folder: Path
    queue: str
    settings: dict[str, Any]
    redis: dict[str, Any]

    @classmethod
    def create(cls, folder: Path, backend: str, server: str = "") -> Project:
        """Write a configuration of one queue on `backend` in `folder`.

        Args:
            folder: The project folder (the commands' working directory).
            backend: sqlite, redis or postgres.
            server: The Redis URL or PostgreSQL DSN of the test server.
        """
        queue = f"q{uuid.uuid4().hex[:12]}"
        settings: dict[str, Any] = {"checkQueueLengthIntervalSecond": 0.2}
        redis: dict[str, Any] = {}
        if backend == "redis":
            settings["redisName"] = "default"
            redis = {"default": {"url": server}}
        elif backend == "postgres":
            settings.update(driver="postgres", dsn=server, schema="corequeue_cli_tests")
        else:
            settings.update(driver="sqlite", path="jobs.db")
        project = cls(folder, queue, settings, redis)
        project.write_config()
        return project

    @property
    def config_file(self) -> Path:
        return self.folder / "corequeue.yaml"

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger.txt"

    def write_config(self) -> None:
        data: dict[str, Any] = {"queue": {self.queue: self.settings}}
        if self.redis:
            data["redis"] = self.redis
        self.config_file.write_text(yaml.safe_dump(data))

    def factory(self) -> QueueFactory:
        return QueueFactory(load_config(self.config_file, environ={}), prometheus=False)

    async def dispatch(self, *jobs: Any) -> list[str]:
        factory = self.factory()
        try:
            return await factory.make(self.queue).dispatch_many(jobs)
        finally:
            await factory.close()

    async def info(self) -> QueueInfo:
        factory = self.factory()
        try:
            return await factory.make(self.queue).info()
        finally:
            await factory.close()

    async def wipe(self) -> None:
        factory = self.factory()
        try:
            for channel in Channel:
                await factory.make(self.queue).driver.flush(channel)
        finally:
            await factory.close()

    def ran(self) -> list[str]:
        """Return the texts of the jobs that ran, in order."""
        if not self.ledger.exists():
            return []
        return [line.split(" ", 1)[1] for line in self.ledger.read_text().splitlines()]


class Worker:
    """`corequeue worker` on a project, as a subprocess; stopped with SIGTERM on leaving."""

    def __init__(
        self, project: Project, *args: str, app: str = "tests.cli.worker_app:setup"
    ) -> None:
        self.project = project
        self.args = ("--app", app, *args)
        self.stdout_path = project.folder / "worker.out"
        self.stderr_path = project.folder / "worker.err"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Worker:
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [*CLI, "worker", *self.args],
                cwd=self.project.folder,
                env=cli_environment(self.project.ledger),
                stdout=stdout,
                stderr=stderr,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(DEADLINE_SECONDS)

    def stop(self) -> int:
        """Send SIGTERM and return the exit code once the worker has stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(DEADLINE_SECONDS)

    def output(self) -> str:
        return self.stdout_path.read_text()

    def errors(self) -> str:
        return self.stderr_path.read_text()
