"""The Host check: a dashboard answers only to the host names it is meant to be reached by.

Without it, DNS rebinding turns any web page into a client of a dashboard on 127.0.0.1: the
page's own host name is made to resolve to 127.0.0.1, and the browser then sends the page's
requests, with that name in `Host`, to the dashboard. So a dashboard without credentials answers
only to loopback names (`localhost` and loopback addresses such as 127.0.0.1 and [::1]), unless
told which names to answer to; other requests get 400.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from corequeue.web.security import route_path

ANY_HOST: Final = "*"
"""In `allowed_hosts`: answer to every host name (a proxy in front checks them)."""


class HostCheck:
    """ASGI middleware that answers 400 to requests whose `Host` is not an allowed name.

    Args:
        app: The app to protect.
        allowed_hosts: Host names to answer to, without ports: exact names, `*.example.com`
            for its subdomains, or `*` for any. None: loopback names only.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else tuple(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests to an allowed host on; answer the others with 400."""
        if scope["type"] != "http" or self.is_allowed(Headers(scope=scope).get("host", "")):
            await self.app(scope, receive, send)
            return
        await _refusal(route_path(scope))(scope, receive, send)

    def is_allowed(self, host_header: str) -> bool:
        """Whether a request with this `Host` header is answered."""
        name = host_name(host_header)
        if self.allowed is None:
            return is_loopback_name(name)
        return any(_matches(name, pattern) for pattern in self.allowed)


def host_name(host_header: str) -> str:
    """The name in a `Host` header, lower case, without its port or IPv6 brackets.

    Example:
        >>> host_name("[::1]:8000"), host_name("LocalHost:80"), host_name("127.0.0.1")
        ('::1', 'localhost', '127.0.0.1')
    """
    header = host_header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def is_loopback_name(name: str) -> bool:
    """Whether `name` can only mean this machine: `localhost` or a loopback address.

    A host name other than `localhost` may resolve to anything, so it is never loopback here.
    """
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _matches(name: str, pattern: str) -> bool:
    if pattern == ANY_HOST:
        return True
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def _refusal(path: str) -> Response:
    message = "invalid Host header: this dashboard does not answer to that host name"
    if path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=400)
    return PlainTextResponse(message, status_code=400)
