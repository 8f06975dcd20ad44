"""Who may use the dashboard, and proof that a POST came from its own pages.

- `Guard` is ASGI middleware: with a token or a basic-auth password configured, every request
  but the login page and static files needs `Authorization: Bearer <token>`, basic-auth
  credentials, or the session cookie the login page sets: a random session id signed with a key
  derived from the token (never the token itself).
- `Csrf` issues signed double-submit tokens bound to the session: a random nonce and its HMAC,
  under the app's secret, over the nonce and the session (the login session's id, the basic-auth
  user, or none). They travel in a SameSite=Strict cookie and in every form; a POST must carry
  the same valid token in its form (`csrf_token`) or `X-CSRF-Token` header, and must come from
  the dashboard's own origin: another origin, or `Origin: null` (sandboxed frames, redirects
  across origins), is refused. A token issued to one session is worthless in another. Requests
  with a bearer token carry no ambient credentials and need none.
- Over TLS, cookies are named `__Host-...` and are Secure with path `/`, so no other host or
  path can set them; over plain HTTP (loopback), they are scoped to the dashboard's path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode, urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

CSRF_COOKIE: Final = "corequeue_csrf"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
SESSION_COOKIE: Final = "corequeue_session"
_AUTH_STATE: Final = "corequeue_auth"
_PUBLIC_PATHS: Final = ("/login", "/static/")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request must present: a token, basic-auth `(user, password)`, or nothing."""

    token: str | None = None
    basic_auth: tuple[str, str] | None = None

    @property
    def required(self) -> bool:
        """Whether any credential is configured."""
        return bool(self.token) or self.basic_auth is not None

    def token_matches(self, given: str) -> bool:
        """Whether `given` is the configured token (False when there is none)."""
        return bool(self.token) and _same(given, self.token or "")

    def new_session(self) -> str:
        """A new login cookie value: a random session id and its signature, never the token."""
        session_id = secrets.token_urlsafe(18)
        return f"{session_id}.{self._sign_session(session_id)}"

    def session_id(self, connection: HTTPConnection) -> str | None:
        """The id of the request's login session, if its cookie carries a valid one."""
        cookie = connection.cookies.get(cookie_name(connection, SESSION_COOKIE), "")
        session_id, _, signature = cookie.partition(".")
        if self.token and session_id and _same(signature, self._sign_session(session_id)):
            return session_id
        return None

    def authenticate(self, connection: HTTPConnection) -> str | None:
        """Return how the request proved who it is ("bearer", "basic", "session"), or None."""
        header = connection.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if self.token and scheme.lower() == "bearer" and _same(value.strip(), self.token):
            return "bearer"
        if self.basic_auth is not None and scheme.lower() == "basic":
            return "basic" if _basic_matches(value.strip(), self.basic_auth) else None
        return "session" if self.session_id(connection) is not None else None

    def binding(self, connection: HTTPConnection) -> str:
        """What CSRF tokens of this request are bound to: its session, basic user, or nothing."""
        method = authenticated_by(connection)
        if method == "session":
            return f"session:{self.session_id(connection)}"
        if method == "basic" and self.basic_auth is not None:
            return f"basic:{self.basic_auth[0]}"
        return "anonymous"

    def _sign_session(self, session_id: str) -> str:
        # The key comes from the token: a new token ends every session made with the old one.
        key = hashlib.sha256(b"corequeue dashboard session\0" + (self.token or "").encode())
        return hmac.new(key.digest(), session_id.encode(), hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or "localhost") is only reachable from this machine.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def route_path(scope: Scope) -> str:
    """The request path below the dashboard's mount point."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def authenticated_by(request: HTTPConnection) -> str | None:
    """How `Guard` authenticated the request ("bearer", "basic", "session"), if it did."""
    state: Mapping[str, object] = request.scope.get("state", {})
    value = state.get(_AUTH_STATE)
    return value if isinstance(value, str) else None


class Guard:
    """ASGI middleware that turns away requests without the configured credentials.

    Pages answer with the browser's basic-auth prompt (basic auth) or a redirect to the login
    page (token); the JSON API answers 401 with a JSON error.
    """

    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass authenticated requests on; answer the others."""
        if scope["type"] != "http" or not self.credentials.required:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        method = self.credentials.authenticate(connection)
        path = route_path(scope)
        if method is not None or path.startswith(_PUBLIC_PATHS):
            scope.setdefault("state", {})[_AUTH_STATE] = method
            await self.app(scope, receive, send)
            return
        await self._challenge(connection, path)(scope, receive, send)

    def _challenge(self, connection: HTTPConnection, path: str) -> Response:
        headers = {}
        if self.credentials.basic_auth is not None:
            headers["WWW-Authenticate"] = 'Basic realm="corequeue dashboard", charset="UTF-8"'
        elif path.startswith("/api/"):
            headers["WWW-Authenticate"] = 'Bearer realm="corequeue dashboard"'
        if path.startswith("/api/"):
            message = "authentication required: send the dashboard token or password"
            return JSONResponse({"error": message}, status_code=401, headers=headers)
        if self.credentials.basic_auth is not None:
            return PlainTextResponse("authentication required", 401, headers=headers)
        root = connection.scope.get("root_path", "")
        target = path + (f"?{connection.url.query}" if connection.url.query else "")
        login = f"{root}/login?{_query(next=target)}"
        return RedirectResponse(login, status_code=303)


class Csrf:
    """Issues and checks signed double-submit CSRF tokens, bound to the request's session.

    Args:
        secret: The HMAC key; give every process of one dashboard the same one.
        credentials: What the dashboard requires, to know each request's session.
    """

    def __init__(self, secret: bytes, credentials: Credentials) -> None:
        self._secret = secret
        self._credentials = credentials

    def new_token(self, binding: str) -> str:
        """Return a fresh token for the session `binding`: a random nonce and its signature."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce, binding)}"

    def is_valid(self, token: str, binding: str) -> bool:
        """Whether `token` was issued with this secret to the session `binding`."""
        nonce, _, signature = token.partition(".")
        return bool(nonce) and _same(signature, self._sign(nonce, binding))

    def token_for(self, request: HTTPConnection) -> tuple[str, bool]:
        """Return the request's valid cookie token, else a new one; and whether it is new."""
        binding = self._credentials.binding(request)
        current = request.cookies.get(cookie_name(request, CSRF_COOKIE), "")
        if current and self.is_valid(current, binding):
            return current, False
        return self.new_token(binding), True

    def problem(self, request: Request, submitted: str | None) -> str | None:
        """Return why a POST fails the CSRF check, or None when it passes."""
        if authenticated_by(request) == "bearer":
            return None
        origin = request.headers.get("origin")
        if origin is not None and not _same_origin(origin, request):
            return f"cross-origin request from {origin[:100]!r} refused"
        if origin is None and request.headers.get("sec-fetch-site") in {"cross-site", "same-site"}:
            return "cross-origin request refused"
        cookie = request.cookies.get(cookie_name(request, CSRF_COOKIE), "")
        if not cookie or not submitted:
            return "missing CSRF token: reload the page and try again"
        binding = self._credentials.binding(request)
        if not (_same(cookie, submitted) and self.is_valid(cookie, binding)):
            return "invalid CSRF token: reload the page and try again"
        return None

    def set_cookie(self, request: HTTPConnection, response: Response, token: str) -> None:
        """Send `token` as the CSRF cookie (see `set_cookie`)."""
        set_cookie(request, response, CSRF_COOKIE, token)

    def _sign(self, nonce: str, binding: str) -> str:
        message = f"{nonce}\0{binding}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()


def is_tls(connection: HTTPConnection) -> bool:
    """Whether the request came over TLS (https), as the server or a trusted proxy says."""
    return connection.url.scheme == "https"


def cookie_name(connection: HTTPConnection, base: str) -> str:
    """The name of cookie `base`: `__Host-<base>` over TLS, else `base`."""
    return f"__Host-{base}" if is_tls(connection) else base


def set_cookie(connection: HTTPConnection, response: Response, base: str, value: str) -> None:
    """Set cookie `base`: HttpOnly, SameSite=Strict; over TLS `__Host-`, Secure, path `/`."""
    response.set_cookie(
        cookie_name(connection, base),
        value,
        path=cookie_path(connection),
        httponly=True,
        samesite="strict",
        secure=is_tls(connection),
    )


def delete_cookie(connection: HTTPConnection, response: Response, base: str) -> None:
    """Remove cookie `base`, with the attributes it was set with."""
    response.delete_cookie(
        cookie_name(connection, base),
        path=cookie_path(connection),
        httponly=True,
        samesite="strict",
        secure=is_tls(connection),
    )


def cookie_path(request: HTTPConnection) -> str:
    """The path cookies are scoped to: `/` over TLS (as `__Host-` needs), else the mount point."""
    if is_tls(request):
        return "/"
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + "/"


def submitted_csrf(request: Request, form: Mapping[str, str]) -> str | None:
    """The CSRF token a POST carries, in its form or its header."""
    return form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)


def safe_next(target: str | None) -> str:
    """Return `target` if it is a path inside the dashboard, else "/" (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _basic_matches(value: str, expected: tuple[str, str]) -> bool:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, _, password = decoded.partition(":")
    # Both compared, always: the time taken says nothing about which one was wrong.
    user_ok = _same(user, expected[0])
    password_ok = _same(password, expected[1])
    return user_ok and password_ok


def _same_origin(origin: str, request: Request) -> bool:
    """Whether `origin` is the dashboard's own; `null` (an opaque origin) never is."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    host = request.headers.get("host", "")
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


def _query(**values: str) -> str:
    return urlencode(values)


def json_error(message: str, status_code: int) -> JSONResponse:
    """The JSON API's error answer: `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status_code)
