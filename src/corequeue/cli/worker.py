"""`corequeue worker`: import the user's listeners, consume, show a live status, serve /metrics.

`--app MODULE:ATTR` names what holds the listeners; ATTR may be:

- a `QueueFactory` (its queues are consumed; it carries its own configuration),
- an `App` (run as it is, or over the queues named with -q),
- a `Queue` (that one queue is consumed),
- a callable (sync or async) that takes the `QueueFactory` built from the configuration and
  subscribes listeners to its queues; its return value is ignored.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from corequeue.cli.common import (
    Failed,
    Output,
    Refused,
    config_option,
    json_option,
    queue_option,
    read_config,
)
from corequeue.cli.logs import configure_logging
from corequeue.cli.status import Status
from corequeue.config import LOG_LEVELS
from corequeue.factory import App, QueueFactory
from corequeue.metrics import FanOut, JobCounts, serve_metrics
from corequeue.queue import Queue

APP_VARIABLE = "COREQUEUE_APP"


@click.command()
@config_option
@queue_option("Queue to consume; repeatable. Default: every configured queue.")
@click.option(
    "--app",
    "app_path",
    envvar=APP_VARIABLE,
    metavar="MODULE:ATTR",
    help="What subscribes the listeners: a QueueFactory, App, Queue, or a callable given the "
    f"QueueFactory. Default: ${APP_VARIABLE}.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port).",
)
@click.option("--metrics-host", default="0.0.0.0", show_default=True, help="Address for /metrics.")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Default: log.level of the configuration, else info.",
)
@json_option
def worker(
    config_path: Path | None,
    queues: tuple[str, ...],
    app_path: str | None,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str | None,
    as_json: bool,
) -> int:
    """Consume the configured queues until SIGTERM or SIGINT, then stop gracefully."""
    if not app_path:
        raise Refused(
            f"the worker needs --app MODULE:ATTR (or ${APP_VARIABLE}) to subscribe listeners; "
            "without them every job would fail with NoListener"
        )
    target = import_target(app_path)
    output = Output(as_json)
    status = Status(output)
    configure_logging(
        log_level or _configured_level(target, config_path) or "info",
        as_json=as_json,
        console=status.live_console,
    )
    options = WorkerOptions(config_path, queues, metrics_port, metrics_host, app_path)
    try:
        asyncio.run(_serve(target, options, status))
    except ExceptionGroup as crashed:  # a consumer died; the App stopped the others first
        logging.getLogger("corequeue").error("worker stopped on an error", exc_info=crashed)
        reasons = "; ".join(f"{type(exc).__name__}: {exc}" for exc in crashed.exceptions)
        raise Failed(f"a consumer stopped: {reasons}") from None
    return 0


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """The worker's command-line choices, passed down together."""

    config_path: Path | None
    queues: tuple[str, ...]
    metrics_port: int | None
    metrics_host: str
    app_path: str


def import_target(app_path: str) -> Any:
    """Import `MODULE:ATTR` (ATTR may be dotted) from the working directory or sys.path.

    Raises:
        Refused: The path is malformed, the module is not found or has no such attribute.
        Failed: Importing the module raised an exception (its traceback goes to stderr).
    """
    module_name, colon, attribute = app_path.partition(":")
    if not colon or not module_name or not attribute:
        raise Refused(f"--app expects MODULE:ATTR, such as myapp.jobs:factory, got {app_path!r}")
    if os.getcwd() not in sys.path:  # as `python -m` would, so a local module is found
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
            traceback.print_exc()  # a module the user's module imports is missing
            raise Failed(f"--app {app_path}: importing {module_name} raised {exc!r}") from None
        raise Refused(f"--app {app_path}: cannot import {module_name}: {exc}") from None
    except Exception as exc:  # the user's module failed while importing: show where
        traceback.print_exc()
        raise Failed(f"--app {app_path}: importing {module_name} raised {exc!r}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise Refused(f"--app {app_path}: {module_name} has no attribute {attribute}")
        target = getattr(target, part)
    return target


async def build_app(target: Any, options: WorkerOptions) -> App:
    """Return the App that runs `target`'s queues (see the module docstring for the kinds)."""
    chosen = options.queues or None
    if isinstance(target, App | QueueFactory | Queue):
        if options.config_path is not None:
            raise Refused(
                f"--config cannot be used with --app {options.app_path}: that "
                f"{type(target).__name__} was built with its own configuration"
            )
        if isinstance(target, App):
            return target if chosen is None else App(target.factory, queues=chosen)
        if isinstance(target, QueueFactory):
            return App(target, queues=chosen)
        if chosen not in (None, (target.name,)):
            raise Refused(f"--app {options.app_path} is the single queue {target.name!r}")
        return App(queues=[target])
    if not callable(target):
        raise Refused(
            f"--app {options.app_path} is a {type(target).__name__}; expected a QueueFactory, "
            "an App, a Queue, or a callable that takes the QueueFactory"
        )
    factory = QueueFactory(read_config(options.config_path))
    try:
        result = target(factory)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:  # the user's set-up failed: show where
        traceback.print_exc()
        raise Failed(f"--app {options.app_path} raised {exc!r}") from None
    return App(factory, queues=chosen)


async def _serve(target: Any, options: WorkerOptions, status: Status) -> None:
    app = await build_app(target, options)
    counts = JobCounts()
    queues = app.queues
    for queue in queues:
        queue.metrics = FanOut(queue.metrics, counts)
    if options.metrics_port is not None:
        status.announce(*_serve_metrics(options, app))
    described = {queue.name: _describe(app, queue) for queue in queues}
    try:
        async with app:
            status.started(described)
            following = asyncio.create_task(status.follow(queues, counts), name="worker status")
            try:
                await app.wait()
            finally:
                following.cancel()
    finally:
        status.stopped()


def _serve_metrics(options: WorkerOptions, app: App) -> tuple[str, int]:
    host, port = options.metrics_host, options.metrics_port or 0
    try:
        host, port = serve_metrics(port, host, app.factory.registry)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise Failed(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return f"metrics at http://{host}:{port}/metrics", port


def _describe(app: App, queue: Queue) -> str:
    if app.factory.made.get(queue.name) is queue:
        store = app.factory.describe(queue.name)
    else:  # a queue built outside the factory: name its driver's class only
        store = type(queue.driver).__name__
    return f"{store}, parallelism {queue.settings.parallelism}"


def _configured_level(target: Any, config_path: Path | None) -> str | None:
    factory = target.factory if isinstance(target, App) else target
    if isinstance(factory, QueueFactory):
        return factory.config.log_level
    if isinstance(target, Queue):
        return None
    return read_config(config_path).log_level
