"""The dashboard's JSON API, under /api (documented in /api/openapi.json).

`GET /api/info` answers exactly what `corequeue queue info --json` prints, and the reload and
flush actions what `corequeue queue reload|flush --json` print: `{queue: {channel: count}}`.
Errors are `{"error": message}` with a 4xx or 5xx status. POSTs need the CSRF token (from
`GET /api/csrf`, sent back in `X-CSRF-Token` with its cookie) unless they carry a bearer token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from corequeue.drivers.base import instant_of_ms
from corequeue.web.activity import BUCKET_SECONDS
from corequeue.web.openapi import openapi_document
from corequeue.web.security import Csrf
from corequeue.web.service import (
    PAGE_SIZE,
    Dashboard,
    Problem,
    job_document,
    schedule_document,
    worker_document,
)


class Api:
    """The JSON side of the dashboard."""

    def __init__(self, dashboard: Dashboard, csrf: Csrf) -> None:
        self.dashboard = dashboard
        self.csrf = csrf

    def routes(self) -> list[BaseRoute]:
        """Return the API's routes, all under /api."""
        return [
            Route("/api/openapi.json", self.openapi, name="api_openapi"),
            Route("/api/csrf", self.csrf_token, name="api_csrf"),
            Route("/api/info", self.info, name="api_info"),
            Route("/api/workers", self.workers, name="api_workers"),
            Route("/api/queues/{queue}/activity", self.activity, name="api_activity"),
            Route("/api/queues/{queue}/periodic", self.periodic, name="api_periodic"),
            Route("/api/queues/{queue}/channels/{channel}/jobs", self.jobs, name="api_jobs"),
            Route(
                "/api/queues/{queue}/channels/{channel}/reload",
                self.reload,
                methods=["POST"],
                name="api_reload",
            ),
            Route(
                "/api/queues/{queue}/channels/{channel}/flush",
                self.flush,
                methods=["POST"],
                name="api_flush",
            ),
            Route(
                "/api/queues/{queue}/jobs/{job_id:path}/retry",
                self.retry,
                methods=["POST"],
                name="api_retry",
            ),
            Route(
                "/api/queues/{queue}/jobs/{job_id:path}/delete",
                self.delete,
                methods=["POST"],
                name="api_delete",
            ),
            Route(
                "/api/queues/{queue}/jobs/{job_id:path}/cancel",
                self.cancel,
                methods=["POST"],
                name="api_cancel",
            ),
            Route("/api/queues/{queue}/jobs/{job_id:path}", self.job, name="api_job"),
        ]

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI 3.1 description of this API."""
        return _json(openapi_document(server=request.scope.get("root_path", "")))

    async def csrf_token(self, request: Request) -> Response:
        """A CSRF token for scripts, with its cookie."""
        token, new = self.csrf.token_for(request)
        response = _json({"csrf_token": token})
        if new:
            self.csrf.set_cookie(request, response, token)
        return response

    async def info(self, request: Request) -> Response:
        """Channel counts of every queue (or those named by `queue=`), as the CLI prints them."""
        names = request.query_params.getlist("queue") or self.dashboard.names
        counts = {name: (await self.dashboard.info(name)).as_dict() for name in names}
        return _json(counts)

    async def workers(self, request: Request) -> Response:
        """The live workers of every queue."""
        found = await self.dashboard.workers()
        documents = [
            worker_document(name, worker) for name, workers in found.items() for worker in workers
        ]
        return _json({"workers": documents})

    async def activity(self, request: Request) -> Response:
        """The chart's figures: finished attempts and backlog per interval, oldest first."""
        name = request.path_params["queue"]
        self.dashboard.queue(name)
        buckets = [
            {
                "start": instant_of_ms(int(bucket.start * 1000)).isoformat(),
                "processed": bucket.processed,
                "retried": bucket.retried,
                "failed": bucket.failed,
                "backlog": bucket.backlog,
            }
            for bucket in await self.dashboard.activity(name)
        ]
        return _json({"queue": name, "bucket_seconds": BUCKET_SECONDS, "buckets": buckets})

    async def periodic(self, request: Request) -> Response:
        """The queue's periodic schedules: next run, last run and last job of each."""
        name = request.path_params["queue"]
        views = await self.dashboard.schedules(name)
        return _json({"queue": name, "schedules": [schedule_document(view) for view in views]})

    async def jobs(self, request: Request) -> Response:
        """A page of the jobs of one channel."""
        name, channel = request.path_params["queue"], request.path_params["channel"]
        offset = _integer(request, "offset", 0)
        limit = _integer(request, "limit", PAGE_SIZE)
        job_type = request.query_params.get("type") or None
        views = await self.dashboard.list_jobs(
            name, channel, offset=offset, limit=limit, job_type=job_type
        )
        count = (await self.dashboard.info(name)).as_dict()[channel]
        return _json(
            {
                "queue": name,
                "channel": channel,
                "count": count,
                "offset": offset,
                "limit": limit,
                "type": job_type,
                "jobs": [job_document(self.dashboard, name, view) for view in views],
            }
        )

    async def job(self, request: Request) -> Response:
        """One job."""
        name, job_id = request.path_params["queue"], request.path_params["job_id"]
        view = await self.dashboard.job(name, job_id)
        return _json(job_document(self.dashboard, name, view))

    async def reload(self, request: Request) -> Response:
        """Move every job of failed or timeout back to waiting; answer as `queue reload`."""
        self._check_csrf(request)
        name, channel = request.path_params["queue"], request.path_params["channel"]
        return _json({name: {channel: await self.dashboard.reload(name, channel)}})

    async def flush(self, request: Request) -> Response:
        """Delete every job of a channel; answer as `queue flush` (the counts deleted)."""
        self._check_csrf(request)
        name, channel = request.path_params["queue"], request.path_params["channel"]
        return _json({name: {channel: await self.dashboard.flush(name, channel)}})

    async def retry(self, request: Request) -> Response:
        """Move one failed or timeout job back to waiting."""
        return await self._job_action(request, "retry", self.dashboard.retry)

    async def delete(self, request: Request) -> Response:
        """Delete one waiting, delayed, failed or timeout job."""
        return await self._job_action(request, "delete", self.dashboard.delete)

    async def cancel(self, request: Request) -> Response:
        """Cancel one waiting or delayed job."""
        return await self._job_action(request, "cancel", self.dashboard.cancel)

    async def _job_action(
        self, request: Request, action: str, run: Callable[[str, str], Awaitable[None]]
    ) -> Response:
        self._check_csrf(request)
        name, job_id = request.path_params["queue"], request.path_params["job_id"]
        await run(name, job_id)
        return _json({"queue": name, "id": job_id, "action": action, "done": True})

    def _check_csrf(self, request: Request) -> None:
        problem = self.csrf.problem(request, request.headers.get("x-csrf-token"))
        if problem is not None:
            raise Problem(problem, 403)


def _integer(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise Problem(f"{name} must be a whole number, got {text!r}", 400) from None


def _json(document: Any) -> Response:
    """Answer `document` as JSON, keys sorted, laid out as the CLI's `--json` prints it."""
    body = json.dumps(document, sort_keys=True, ensure_ascii=False)
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})
