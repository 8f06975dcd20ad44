"""Helpers for the dashboard tests: apps over real SQLite queues, and an HTTP client."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp

from corequeue.queue import Queue
from corequeue.web.security import CSRF_COOKIE

BASE_URL = "http://127.0.0.1:8000"


@asynccontextmanager
async def client_of(app: ASGIApp, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an HTTP client that talks to `app` in this process (no lifespan, no server).

    Its requests go to BASE_URL, a loopback address, unless `base_url=` says otherwise.
    """
    transport = httpx.ASGITransport(app=app)
    options.setdefault("base_url", BASE_URL)
    async with httpx.AsyncClient(transport=transport, **options) as client:
        yield client


async def park_failed(queue: Queue, payload: Any, error: str, **adjust: Any) -> str:
    """Dispatch `payload`, take it as a worker would and fail it with `error`; return its id.

    Nothing else may be waiting in the queue.
    """
    job_id = await queue.dispatch(payload)
    job = await queue.driver.pop()
    assert job.id == job_id
    job.last_error = error
    await queue.driver.fail(job)
    return job_id


async def csrf_token(client: httpx.AsyncClient, page: str = "/") -> str:
    """Load `page` (which sets the CSRF cookie) and return the token of its forms."""
    response = await client.get(page)
    found = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    token = found.group(1) if found else client.cookies.get(CSRF_COOKIE)
    assert token, f"no CSRF token on {page}"
    return token


def job_ids(html: str) -> list[str]:
    """The ids of the rows of a channel page's job table."""
    return re.findall(r'<tr data-job-id="([^"]+)"', html)


def block(page: str, marker: str) -> str:
    """The text of the `<pre>` marked with attribute `marker`, unescaped."""
    found = re.search(rf"<pre [^>]*{marker}[^>]*>(.*?)</pre>", page, re.DOTALL)
    assert found, f"no <pre {marker}> on the page"
    return html.unescape(found.group(1))
