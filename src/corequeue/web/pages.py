"""The dashboard's HTML pages and the form actions behind their buttons.

Pages are rendered on the server by Jinja2 with autoescaping on; the only script refreshes the
overview's live part. Every action is a POST form carrying the CSRF token, answered with a
redirect (303) to a page that shows what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from corequeue.drivers.base import RELOADABLE, Channel
from corequeue.web.activity import SAMPLE_SECONDS
from corequeue.web.chart import draw
from corequeue.web.security import (
    SESSION_COOKIE,
    Credentials,
    Csrf,
    authenticated_by,
    delete_cookie,
    safe_next,
    set_cookie,
    submitted_csrf,
)
from corequeue.web.service import PAGE_SIZE, Dashboard, Problem, channel_of

MAX_FORM_BYTES: Final = 64 * 1024

NOTICES: Final = {
    "reloaded": "Moved {jobs} back to waiting.",
    "flushed": "Deleted {jobs}.",
    "retried": "The job is back in waiting.",
    "deleted": "The job was deleted.",
    "cancelled": "The job was cancelled (a running job stops at its worker's next renewal).",
    "paused": "The queue is paused: workers start none of its jobs until it is resumed.",
    "resumed": "The queue is resumed.",
    "logged-out": "Logged out.",
}
"""The messages a redirect may ask a page to show, by code: pages never echo request text."""


class Pages:
    """The HTML side of the dashboard."""

    def __init__(self, dashboard: Dashboard, csrf: Csrf, credentials: Credentials) -> None:
        self.dashboard = dashboard
        self.csrf = csrf
        self.credentials = credentials
        self.templates = Environment(
            loader=PackageLoader("corequeue.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when

    def routes(self) -> list[BaseRoute]:
        """Return the routes of every page and form action."""
        return [
            Route("/", self.overview, name="overview"),
            Route("/live/overview", self.overview_live, name="overview_live"),
            Route("/login", self.login_form, name="login"),
            Route("/login", self.login, methods=["POST"], name="login_post"),
            Route("/logout", self.logout, methods=["POST"], name="logout"),
            Route("/workers", self.workers, name="workers"),
            Route("/queues/{queue}", self.queue, name="queue"),
            Route("/queues/{queue}/channels/{channel}", self.channel, name="channel"),
            Route(
                "/queues/{queue}/channels/{channel}/reload",
                self.reload,
                methods=["POST"],
                name="reload",
            ),
            Route("/queues/{queue}/channels/{channel}/flush", self.confirm_flush, name="flush"),
            Route(
                "/queues/{queue}/channels/{channel}/flush",
                self.flush,
                methods=["POST"],
                name="flush_post",
            ),
            Route(
                "/queues/{queue}/jobs/{job_id:path}/retry",
                self.retry,
                methods=["POST"],
                name="retry",
            ),
            Route(
                "/queues/{queue}/jobs/{job_id:path}/delete",
                self.delete,
                methods=["POST"],
                name="delete",
            ),
            Route(
                "/queues/{queue}/jobs/{job_id:path}/cancel",
                self.cancel,
                methods=["POST"],
                name="cancel",
            ),
            Route("/queues/{queue}/pause", self.pause, methods=["POST"], name="pause"),
            Route("/queues/{queue}/resume", self.resume, methods=["POST"], name="resume"),
            Route("/queues/{queue}/jobs/{job_id:path}", self.job, name="job"),
        ]

    # --- pages -----------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        """Every queue: channel counts and the activity chart."""
        return self.render(request, "overview.html", cards=await self._cards())

    async def overview_live(self, request: Request) -> Response:
        """The live part of the overview, which its script swaps in every few seconds."""
        return self.render(request, "_cards.html", cards=await self._cards())

    async def workers(self, request: Request) -> Response:
        """The live workers of every queue, from their heartbeats."""
        return self.render(request, "workers.html", workers=await self.dashboard.workers())

    async def queue(self, request: Request) -> Response:
        """A queue's page is its waiting channel."""
        name = request.path_params["queue"]
        self.dashboard.queue(name)
        return self._redirect(request, "channel", queue=name, channel=Channel.WAITING.value)

    async def channel(self, request: Request) -> Response:
        """One channel: its jobs, a page at a time, filterable by type; the queue's schedules."""
        name, channel = request.path_params["queue"], request.path_params["channel"]
        offset = _offset(request.query_params.get("offset"))
        job_type = request.query_params.get("type", "").strip() or None
        info = await self.dashboard.info(name)
        can_list = self.dashboard.inspector(name) is not None
        views = (
            await self.dashboard.list_jobs(
                name, channel, offset=offset, limit=PAGE_SIZE + 1, job_type=job_type
            )
            if can_list
            else []
        )
        return self.render(
            request,
            "channel.html",
            queue=name,
            channel=channel,
            counts=info.as_dict(),
            views=views[:PAGE_SIZE],
            has_next=len(views) > PAGE_SIZE,
            offset=offset,
            page_size=PAGE_SIZE,
            job_type=job_type or "",
            can_list=can_list,
            reloadable=channel in RELOADABLE,
            schedules=await self.dashboard.schedules(name),
            paused=await self.dashboard.queue(name).is_paused(),
            limits=self.dashboard.queue(name).limits.describe(),
            groups=await self.dashboard.group_counts(name),
        )

    async def job(self, request: Request) -> Response:
        """One job: its envelope, last error and payload, and what can be done with it."""
        name, job_id = request.path_params["queue"], request.path_params["job_id"]
        view = await self.dashboard.job(name, job_id)
        return self.render(
            request,
            "job.html",
            queue=name,
            view=view,
            payload=self.dashboard.payload(view),
            result=self.dashboard.result(view),
            reloadable=view.channel in RELOADABLE,
        )

    async def confirm_flush(self, request: Request) -> Response:
        """Ask before deleting every job of a channel."""
        name, channel = request.path_params["queue"], request.path_params["channel"]
        parsed = channel_of(channel)
        info = await self.dashboard.info(name)
        count = info.as_dict()[parsed.value]
        return self.render(request, "flush.html", queue=name, channel=channel, count=count)

    async def login_form(self, request: Request) -> Response:
        """Ask for the dashboard token."""
        if not self.credentials.token:
            return self._redirect(request, "overview")
        return self.render(request, "login.html", next=safe_next(request.query_params.get("next")))

    # --- actions ---------------------------------------------------------------------------

    async def reload(self, request: Request) -> Response:
        """Move every job of failed or timeout back to waiting."""
        await self._form(request)
        name, channel = request.path_params["queue"], request.path_params["channel"]
        moved = await self.dashboard.reload(name, channel)
        return self._done(request, "reloaded", moved, "channel", queue=name, channel=channel)

    async def flush(self, request: Request) -> Response:
        """Delete every job of a channel, once confirmed."""
        form = await self._form(request)
        name, channel = request.path_params["queue"], request.path_params["channel"]
        if form.get("confirm") != channel:
            raise Problem("not flushed: confirm by pressing the button on the flush page", 400)
        deleted = await self.dashboard.flush(name, channel)
        return self._done(request, "flushed", deleted, "channel", queue=name, channel=channel)

    async def retry(self, request: Request) -> Response:
        """Move one failed or timeout job back to waiting."""
        return await self._job_action(request, self.dashboard.retry, "retried")

    async def delete(self, request: Request) -> Response:
        """Delete one job."""
        return await self._job_action(request, self.dashboard.delete, "deleted")

    async def cancel(self, request: Request) -> Response:
        """Cancel one waiting or delayed job, or ask the worker running it to stop it."""
        return await self._job_action(request, self.dashboard.cancel, "cancelled")

    async def pause(self, request: Request) -> Response:
        """Pause the queue: its workers start no job until it is resumed."""
        return await self._pause_action(request, paused=True)

    async def resume(self, request: Request) -> Response:
        """Resume a paused queue."""
        return await self._pause_action(request, paused=False)

    async def login(self, request: Request) -> Response:
        """Check the token and set the session cookie."""
        form = await self._form(request)
        target = safe_next(form.get("next"))
        token = form.get("token", "")
        if not self.credentials.token_matches(token):
            page = self.render(request, "login.html", next=target, failed=True)
            page.status_code = 401
            return page
        root = request.scope.get("root_path", "")
        response = RedirectResponse(root + target, status_code=303)
        set_cookie(request, response, SESSION_COOKIE, self.credentials.new_session())
        return response

    async def logout(self, request: Request) -> Response:
        """Forget the session cookie."""
        await self._form(request)
        response = self._redirect(request, "login", query={"notice": "logged-out"})
        delete_cookie(request, response, SESSION_COOKIE)
        return response

    # --- rendering -------------------------------------------------------------------------

    def render(self, request: Request, template: str, **context: Any) -> HTMLResponse:
        """Render `template` with the shared context; set the CSRF cookie when it is new."""
        token, new = self.csrf.token_for(request)
        notice = NOTICES.get(request.query_params.get("notice", ""))
        count = _count(request.query_params.get("n"))
        shared = {
            "url": _url_builder(request),
            "csrf_token": token,
            "names": self.dashboard.names,
            "channels": [channel.value for channel in Channel],
            "notice": notice.format(jobs=_jobs(count)) if notice else None,
            "show_payloads": self.dashboard.show_payloads,
            "logged_in": authenticated_by(request) == "session",
            "refresh_seconds": int(SAMPLE_SECONDS),
            "now": datetime.now(UTC),
        }
        html = self.templates.get_template(template).render(**shared, **context)
        response = HTMLResponse(html, status_code=context.get("status", 200))
        response.headers["cache-control"] = "no-store"
        if new:
            self.csrf.set_cookie(request, response, token)
        return response

    def error(self, request: Request, message: str, status: int) -> Response:
        """Render the error page."""
        return self.render(request, "error.html", message=message, status=status)

    async def _cards(self) -> list[dict[str, Any]]:
        infos = await self.dashboard.infos()
        return [
            {
                "name": name,
                "counts": info.as_dict(),
                "driver": type(self.dashboard.queue(name).driver).__name__,
                "chart": draw(await self.dashboard.activity(name)),
            }
            for name, info in infos.items()
        ]

    async def _form(self, request: Request) -> dict[str, str]:
        """Read a urlencoded form and check its CSRF token; raise Problem 403 if it fails."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Problem("form too large", 413)
        form = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        problem = self.csrf.problem(request, submitted_csrf(request, form))
        if problem is not None:
            raise Problem(problem, 403)
        return form

    async def _job_action(
        self, request: Request, action: Callable[[str, str], Any], notice: str
    ) -> Response:
        form = await self._form(request)
        name, job_id = request.path_params["queue"], request.path_params["job_id"]
        await action(name, job_id)
        channel = form.get("back", "")
        if channel in {c.value for c in Channel}:
            return self._done(request, notice, 1, "channel", queue=name, channel=channel)
        return self._done(request, notice, 1, "overview")

    async def _pause_action(self, request: Request, *, paused: bool) -> Response:
        form = await self._form(request)
        name = request.path_params["queue"]
        queue = self.dashboard.queue(name)
        await (queue.pause() if paused else queue.resume())
        channel = form.get("back", "")
        if channel not in {c.value for c in Channel}:
            channel = Channel.WAITING.value
        notice = "paused" if paused else "resumed"
        return self._done(request, notice, 0, "channel", queue=name, channel=channel)

    def _done(
        self, request: Request, notice: str, count: int, route: str, **params: str
    ) -> Response:
        return self._redirect(request, route, query={"notice": notice, "n": str(count)}, **params)

    def _redirect(
        self, request: Request, route: str, query: Mapping[str, str] | None = None, **params: str
    ) -> RedirectResponse:
        return RedirectResponse(_url_builder(request)(route, query=query, **params), 303)


def _url_builder(request: Request) -> Callable[..., str]:
    """Return `url(route, query=None, **params)`: a path under the dashboard's mount point."""
    root: str = request.scope.get("root_path", "")
    router = request.app.router  # the dashboard's own: scope["router"] is the outermost app's

    def url(route: str, query: Mapping[str, str] | None = None, **params: str) -> str:
        # Queue names and job ids may hold any character; the static file path keeps its "/".
        quoted = {
            key: quote(value, safe="/" if key == "path" else "") for key, value in params.items()
        }
        path = root + str(router.url_path_for(route, **quoted))
        return f"{path}?{urlencode(query)}" if query else path

    return url


def _offset(text: str | None) -> int:
    try:
        return max(int(text or 0), 0)
    except ValueError:
        return 0


def _count(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _when(moment: datetime | None) -> str:
    """Show an instant in UTC with how far it is from now: `2024-05-01 12:00:05 UTC (in 3m)`."""
    if moment is None:
        return ""
    moment = moment.astimezone(UTC)  # a schedule's next run is in its own zone
    seconds = int((moment - datetime.now(UTC)).total_seconds())
    span = abs(seconds)
    amount = f"{span}s" if span < 120 else f"{span // 60}m" if span < 7200 else f"{span // 3600}h"
    relative = f"in {amount}" if seconds >= 0 else f"{amount} ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({relative})"
