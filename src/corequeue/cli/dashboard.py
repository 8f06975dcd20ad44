"""`corequeue dashboard`: serve the web dashboard of the configured queues with uvicorn.

Bound to 127.0.0.1 unless told otherwise. On any address other machines can reach, it refuses
to start without a token or a basic-auth password, given by option or, better (a command line
is visible to every user of the machine), by environment variable. Neither is ever printed.
Without credentials it answers only to loopback host names (no DNS rebinding), unless
`--allowed-host` names others.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from corequeue.cli.common import (
    Refused,
    admin_factory,
    chosen_queues,
    config_option,
    queue_option,
    read_config,
)
from corequeue.factory import QueueFactory

if TYPE_CHECKING:
    import uvicorn

TOKEN_VARIABLE = "COREQUEUE_DASHBOARD_TOKEN"
PASSWORD_VARIABLE = "COREQUEUE_DASHBOARD_PASSWORD"
USER_VARIABLE = "COREQUEUE_DASHBOARD_USER"


@click.command()
@config_option
@queue_option("Queue to show; repeatable. Default: every configured queue.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free port; the log says which).",
)
@click.option(
    "--token",
    envvar=TOKEN_VARIABLE,
    show_envvar=True,
    help="Require this token (Authorization: Bearer, or the login page). Prefer the variable.",
)
@click.option(
    "--password",
    envvar=PASSWORD_VARIABLE,
    show_envvar=True,
    help="Require HTTP basic auth with this password. Prefer the variable.",
)
@click.option(
    "--user",
    envvar=USER_VARIABLE,
    default="corequeue",
    show_default=True,
    show_envvar=True,
    help="The basic-auth user name that goes with --password.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A host name (Host header) to answer to; repeatable; *.example.com for subdomains, * "
    "for any. Default: loopback names only without credentials, any with them.",
)
@click.option("--no-payloads", is_flag=True, help="Never show job payloads.")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"], case_sensitive=False),
    default="info",
    show_default=True,
    help="uvicorn's log level.",
)
def dashboard(
    config_path: Path | None,
    queues: tuple[str, ...],
    host: str,
    port: int,
    token: str | None,
    password: str | None,
    user: str,
    allowed_hosts: tuple[str, ...],
    no_payloads: bool,
    log_level: str,
) -> int:
    """Serve the web dashboard: live counts, jobs, and reload / flush / retry / delete."""
    from corequeue.web.security import is_loopback

    if not is_loopback(host) and not (token or password):
        raise Refused(
            f"refusing to serve the dashboard on {host}, where other machines can reach it, "
            f"without credentials: set ${TOKEN_VARIABLE} or ${PASSWORD_VARIABLE} (or --token / "
            f"--password), or listen on 127.0.0.1"
        )
    try:
        import uvicorn

        from corequeue.web import create_app
    except ImportError as exc:
        raise Refused(f"the dashboard needs corequeue[web] ({exc})") from None
    config = read_config(config_path)
    names = chosen_queues(config, queues, all_by_default=True)
    factory = admin_factory(config)
    app = create_app(
        {name: factory.make(name) for name in names},
        token=token or None,
        basic_auth=(user, password) if password else None,
        show_payloads=not no_payloads,
        allowed_hosts=allowed_hosts or None,
    )
    guard = "token" if token else "password" if password else "no credentials (loopback only)"
    click.echo(f"corequeue dashboard: queues {', '.join(names)}; {guard}", err=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False)
    )
    with _signals_stop(server):
        asyncio.run(_serve(server, factory))
    return 0


async def _serve(server: uvicorn.Server, factory: QueueFactory) -> None:
    """Serve until SIGINT / SIGTERM, then close the queues on the same event loop."""
    try:
        await server.serve()
    finally:
        await factory.close()


@contextlib.contextmanager
def _signals_stop(server: uvicorn.Server) -> Iterator[None]:
    """Make SIGINT / SIGTERM a graceful stop and a clean exit, whenever they come.

    While it serves, uvicorn handles them itself, then raises the signal again for the handler
    installed before it: this one, so `dashboard` returns 0 instead of dying of the signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
