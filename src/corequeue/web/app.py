"""`create_app()`: the dashboard as an ASGI app, to serve alone or mount in your own app."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corequeue.errors import CoreQueueError
from corequeue.queue import Queue
from corequeue.web.activity import SAMPLE_SECONDS, ActivityRecorder
from corequeue.web.api import Api
from corequeue.web.hosts import ANY_HOST, HostCheck
from corequeue.web.pages import Pages
from corequeue.web.security import Credentials, Csrf, Guard, json_error, route_path
from corequeue.web.service import Dashboard, Problem

_log = logging.getLogger("corequeue.web")

_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
     b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]  # fmt: skip


def create_app(
    queues: Mapping[str, Queue],
    *,
    token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    show_payloads: bool = True,
    secret_key: str | bytes | None = None,
    recorder: ActivityRecorder | None = None,
    allowed_hosts: Iterable[str] | None = None,
) -> Starlette:
    """Return the dashboard of `queues` as an ASGI app (Starlette).

    Serve it alone (`uvicorn`, or `corequeue dashboard`), or mount it in your own ASGI app:
    `Mount("/queues", app=create_app(...))`. Its links, cookies and redirects follow the mount
    point. Mounted apps get no lifespan events, so the chart's backlog is then sampled as pages
    are viewed.

    Args:
        queues: The queues to show, by name.
        token: Require this token: `Authorization: Bearer <token>`, or the login page.
        basic_auth: Require HTTP basic auth with this `(user, password)`.
        show_payloads: Show job payloads; False hides them from pages and the API.
        secret_key: Key that signs CSRF tokens; give every process serving one dashboard the
            same. Default: derived from the token or password, else random per app.
        recorder: Where the chart's figures are kept (default: a new ActivityRecorder). It is
            added to each queue's metrics, so attempts finished in this process are counted.
        allowed_hosts: The host names (in the `Host` header, without port) the dashboard
            answers to; others get 400. Exact names, `*.example.com`, or `*` for any. Default:
            without credentials, loopback names only (`localhost`, 127.0.0.1, [::1]), which
            stops DNS rebinding; with credentials, any.

    Example:
        >>> app = create_app(
        ...     {"default": queue}, token=os.environ["DASHBOARD_TOKEN"]
        ... )  # doctest: +SKIP
    """
    credentials = Credentials(token=token or None, basic_auth=basic_auth)
    dashboard = Dashboard(
        queues, show_payloads=show_payloads, recorder=recorder or ActivityRecorder()
    )
    csrf = Csrf(_secret(secret_key, credentials), credentials)
    if allowed_hosts is None and credentials.required:
        allowed_hosts = [ANY_HOST]
    pages = Pages(dashboard, csrf, credentials)
    api = Api(dashboard, csrf)
    static = StaticFiles(directory=Path(__file__).parent / "static")
    routes: list[BaseRoute] = [
        *pages.routes(),
        *api.routes(),
        Mount("/static", app=static, name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sampler = asyncio.create_task(_sample_forever(dashboard), name="corequeue dashboard")
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    async def on_problem(request: Request, exc: Exception) -> Response:
        if isinstance(exc, Problem):
            status, message = exc.status, exc.message
        else:  # a store that is down, a job it cannot read: say so, keep serving
            status, message = 503, str(exc)
            _log.warning("dashboard: %s %s: %s", request.method, request.url.path, message)
        if route_path(request.scope).startswith("/api/"):
            return json_error(message, status)
        return pages.error(request, message, status)

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(_SecurityHeaders),
            Middleware(HostCheck, allowed_hosts=allowed_hosts),
            Middleware(Guard, credentials=credentials),
        ],
        exception_handlers={Problem: on_problem, CoreQueueError: on_problem},
        lifespan=lifespan,
    )


class _SecurityHeaders:
    """Adds a strict Content-Security-Policy and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _sample_forever(dashboard: Dashboard) -> None:
    """Sample every queue's counts for the chart, whether or not a page is open."""
    while True:
        try:
            await dashboard.sample_all()
        except CoreQueueError as exc:  # a store that is down now may be back next time
            _log.warning("dashboard: cannot read queue counts: %s", exc)
        await asyncio.sleep(SAMPLE_SECONDS)


def _secret(secret_key: str | bytes | None, credentials: Credentials) -> bytes:
    if isinstance(secret_key, bytes):
        return secret_key
    if secret_key:
        return secret_key.encode()
    known = credentials.token or (credentials.basic_auth[1] if credentials.basic_auth else "")
    if known:
        return hashlib.sha256(b"corequeue dashboard csrf\0" + known.encode()).digest()
    return secrets.token_bytes(32)
