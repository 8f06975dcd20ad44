"""The `corequeue` command: `worker`, `workers`, `queue info|flush|reload|periodic`, `migrate`,
`dashboard`.

`main(argv)` runs it and returns the exit code: 0 success, 1 runtime error, 2 usage or
configuration error, reported in one line (`error: ...` on stderr, or JSON with `--json`).
Every command finds its configuration in `--config FILE`, else
`$COREQUEUE_CONFIG`, else `./corequeue.yaml` or `./corequeue.toml`, else the built-in default.
"""

from __future__ import annotations

import json
import sys

import click
from click.exceptions import NoArgsIsHelpError

from corequeue.cli.common import RUNTIME_ERROR, USAGE_ERROR
from corequeue.cli.dashboard import dashboard
from corequeue.cli.migrate import migrate
from corequeue.cli.queues import queue_group
from corequeue.cli.worker import worker
from corequeue.cli.workers import workers
from corequeue.errors import CoreQueueError, InvalidOption


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="corequeue", prog_name="corequeue")
def cli() -> None:
    """corequeue: a durable job queue. Run workers, inspect and repair queues."""


cli.add_command(worker)
cli.add_command(queue_group)
cli.add_command(migrate)
cli.add_command(dashboard)
cli.add_command(workers)


def main(argv: list[str] | None = None) -> int:
    """Run the `corequeue` command with `argv` (default: sys.argv[1:]); return the exit code.

    Example:
        >>> main(["queue", "info", "--json"])  # doctest: +SKIP
        {"default": {"delayed": 0, "failed": 0, "reserved": 0, "timeout": 0, "waiting": 0}}
        0
    """
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    try:
        result = cli.main(args=args, prog_name="corequeue", standalone_mode=False)
    except click.ClickException as exc:
        return _report(exc.format_message(), exc.exit_code, as_json, usage=exc)
    except click.Abort:
        return _report("aborted", RUNTIME_ERROR, as_json)
    except InvalidOption as exc:  # ConfigError too: a bad file, variable, queue or channel
        return _report(str(exc), USAGE_ERROR, as_json)
    except CoreQueueError as exc:
        return _report(str(exc), RUNTIME_ERROR, as_json)
    return result if isinstance(result, int) else 0


def _report(
    message: str, code: int, as_json: bool, usage: click.ClickException | None = None
) -> int:
    """Print one line saying what went wrong (stderr, or stdout as JSON); return `code`."""
    line = " ".join(message.split())
    if isinstance(usage, click.UsageError) and usage.ctx is not None:
        line = _usage_line(usage, usage.ctx)
    if as_json:
        click.echo(json.dumps({"error": line, "exit_code": code}))
    else:
        click.echo(f"error: {line}", err=True)
    return code


def _usage_line(error: click.UsageError, ctx: click.Context) -> str:
    """One line for a usage error: what is wrong, and where the help is."""
    if isinstance(error, NoArgsIsHelpError) and isinstance(ctx.command, click.Group):
        commands = ", ".join(sorted(ctx.command.list_commands(ctx)))
        problem = f"missing command: one of {commands}"
    else:
        problem = " ".join(error.format_message().split())
    return f"{problem} (see '{ctx.command_path} --help')"
