"""What every command shares: the --config and --json options, output, and exit codes.

Exit codes: 0 success, 1 runtime error (a store is down, a job source crashed, the user said
no), 2 usage or configuration error (bad flag, bad config file, unknown queue or channel).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from corequeue.config import Config, load_config
from corequeue.drivers.base import Channel
from corequeue.factory import QueueFactory
from corequeue.queue import Queue

OK: Final = 0
RUNTIME_ERROR: Final = 1
USAGE_ERROR: Final = 2

F = TypeVar("F", bound=Callable[..., Any])
_Read = TypeVar("_Read")

CHANNELS: Final = tuple(channel.value for channel in Channel)
"""Every channel name, as `-c/--channel` accepts them."""

DEFAULT_CHANNELS: Final = (Channel.TIMEOUT.value, Channel.FAILED.value)
"""The channels flush and reload act on when no `-c` is given (as in the Go module)."""


class Refused(click.ClickException):
    """The command will not do what was asked (a usage error): exit code 2."""

    exit_code = USAGE_ERROR


class Failed(click.ClickException):
    """The command could not finish (a runtime error): exit code 1."""

    exit_code = RUNTIME_ERROR


def config_option(command: F) -> F:
    """Add `--config FILE`."""
    return click.option(
        "--config",
        "config_path",
        # Not click.Path: it stats the name while parsing and crashes on a NUL character; the
        # configuration lookup says "no such file" for any name it cannot open.
        callback=_as_path,
        help="Configuration file (YAML or TOML). Default: $COREQUEUE_CONFIG, else "
        "./corequeue.yaml or ./corequeue.toml, else one 'default' queue on SQLite.",
    )(command)


def _as_path(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    return None if value is None else Path(value)


def json_option(command: F) -> F:
    """Add `--json`."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables."
    )(command)


def queue_option(help_text: str) -> Callable[[F], F]:
    """Return a decorator adding `-q/--queue QUEUE`, repeatable."""
    return click.option("-q", "--queue", "queues", multiple=True, help=help_text)


def channel_option(command: F) -> F:
    """Add `-c/--channel CHANNEL`, repeatable, defaulting to timeout and failed."""
    return channels_option("Channel to act on; repeatable. Default: timeout and failed.")(command)


def channels_option(help_text: str) -> Callable[[F], F]:
    """Return a decorator adding `-c/--channel CHANNEL`, repeatable, with its own help."""
    return click.option(
        "-c", "--channel", "channels", multiple=True, type=click.Choice(CHANNELS), help=help_text
    )


def read_config(config_path: Path | None) -> Config:
    """Load the configuration the way every command does (see corequeue.config.load_config)."""
    return load_config(config_path)


def admin_factory(config: Config) -> QueueFactory:
    """Return a factory for commands that inspect or move jobs: no metrics, no consumers."""
    return QueueFactory(config, prometheus=False)


async def each_queue(
    factory: QueueFactory, names: list[str], read: Callable[[Queue], Awaitable[_Read]]
) -> dict[str, _Read]:
    """Return `read(queue)` for each named queue, in order; close the factory's queues after."""
    try:
        return {name: await read(factory.make(name)) for name in names}
    finally:
        await factory.close()


def titled_table(config: Config) -> Table:
    """Return a table titled with where the configuration came from (as every command shows)."""
    return Table(title=Text(f"corequeue: {config.source}"), title_justify="left")


def chosen_queues(config: Config, queues: tuple[str, ...], *, all_by_default: bool) -> list[str]:
    """Return the queues a command acts on: those named, else every queue or just `default`.

    Raises:
        InvalidOption: A named queue is not configured (and is not `default`).
    """
    if not queues:
        return list(config.names) if all_by_default else ["default"]
    for name in queues:
        config.queue(name)
    return list(dict.fromkeys(queues))


def jobs(count: int) -> str:
    """Return `1 job` or `N jobs`."""
    return f"{count} job" if count == 1 else f"{count} jobs"


class Output:
    """Writes human output (rich) or JSON to stdout, and messages to stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
        # Piped output is read by people in logs and by tests: do not fold it at 80 columns.
        self.console = Console(highlight=False, width=160 if piped else None)
        self.errors = Console(stderr=True, highlight=False, soft_wrap=True)

    def json(self, value: Any) -> None:
        """Print `value` as one line of JSON."""
        click.echo(json.dumps(value, sort_keys=True))

    def say(self, text: str) -> None:
        """Print a line for people (nothing in --json mode)."""
        if not self.as_json:
            self.console.print(text, markup=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        """Print a line for people on stderr, even in --json mode."""
        self.errors.print(text, markup=False, soft_wrap=True)
