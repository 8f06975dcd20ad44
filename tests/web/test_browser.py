"""End to end in a real browser: Debian's headless Chromium, driven by Playwright.

The dashboard is served by uvicorn on a loopback port, over SQLite queues that a real worker
consumes in the same event loop. Attacks come from the browser too: a host name resolved to
127.0.0.1 (DNS rebinding) and forged forms from another port of the same machine. Waiting is
Playwright's auto-waiting and polling under deadlines, never a fixed sleep. Without Chromium
these tests are skipped on a laptop and fail in CI (scripts/test installs it).
"""

from __future__ import annotations

import asyncio
import html
import math
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.async_api import Page, async_playwright, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

import corequeue as cq
from corequeue.drivers.base import QueueInfo
from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.queue import Queue
from corequeue.web import ActivityRecorder, create_app
from corequeue.web.security import CSRF_COOKIE

CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"

expect.set_options(timeout=15_000)


@dataclass
class SendEmail:
    to: str
    subject: str


def chromium() -> str:
    """Return the path of Debian's Chromium; skip (laptop) or fail (CI) without it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium is not installed: scripts/test installs it (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port; yield its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()  # startup failed: raise why
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def browser_page(profile: Path, *flags: str) -> AsyncIterator[Page]:
    """Yield a page of a fresh headless Chromium (its own profile folder), with extra `flags`."""
    executable = chromium()
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_FLAGS, *flags],
            viewport={"width": 1280, "height": 720},
        )
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()


@asynccontextmanager
async def consuming(*queues: Queue) -> AsyncIterator[None]:
    """Run a worker on each queue for the block, then stop them gracefully."""
    tasks = [asyncio.create_task(queue.consume(handle_signals=False)) for queue in queues]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    """Poll `check` until it is true; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.02)


async def test_failed_job_is_reloaded_from_the_browser_and_runs(tmp_path: Path) -> None:
    queue = Queue(SQLiteDriver(tmp_path / "jobs.db"), name="default")
    attempts: list[int] = []
    ran = asyncio.Event()

    @queue.listener(SendEmail)
    async def send(job: cq.ReceivedJob) -> None:
        attempts.append(job.attempt)
        if len(attempts) == 1:
            raise RuntimeError("SMTP server said 421: try again later")
        ran.set()

    job_id = await queue.dispatch(SendEmail("ada@example.com", "welcome"))
    overview_failed = '[data-queue="default"] [data-channel="failed"]'
    recorder = ActivityRecorder()

    async def settled() -> bool:
        """The job is acked and both its attempts are counted for the chart."""
        finished = sum(bucket.finished for bucket in recorder.buckets("default"))
        return finished == 2 and await queue.info() == QueueInfo()

    async with (
        serving(create_app({"default": queue}, recorder=recorder)) as url,
        consuming(queue),
        browser_page(tmp_path / "profile") as page,
    ):

        async def has_failed() -> bool:
            return (await queue.info()).failed == 1

        await eventually(has_failed)

        await page.goto(f"{url}/")
        await expect(page.locator(f"{overview_failed} .n")).to_have_text("1")
        await page.click(f"{overview_failed} a")
        await page.click(f'tr[data-job-id="{job_id}"] td.id a')
        await expect(page.locator("[data-channel]")).to_have_text("failed")
        await expect(page.locator("[data-last-error]")).to_contain_text("SMTP server said 421")
        await expect(page.locator("[data-payload]")).to_contain_text('"to": "ada@example.com"')

        await page.click('button[data-action="reload"]')

        await expect(page.locator(".notice")).to_have_text("Moved 1 job back to waiting.")
        await expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(0)
        await asyncio.wait_for(ran.wait(), 15)
        assert attempts == [1, 1]  # a reload is not a retry: the attempt count stays
        await eventually(settled)

        await page.goto(f"{url}/queues/default/jobs/{job_id}")
        await expect(page.locator("[data-problem]")).to_contain_text("it finished")
        await page.goto(f"{url}/")
        await expect(page.locator(f"{overview_failed} .n")).to_have_text("0")
        await expect(page.locator('[data-queue="default"] figcaption strong')).to_have_text("2")

        # The overview refreshes itself: a job dispatched now shows up without a reload.
        await queue.dispatch(SendEmail("bob@example.com", "hello"))
        await expect(page.locator('[data-queue="default"] figcaption strong')).to_have_text("3")
        assert await page.locator("#live").get_attribute("data-refreshed")
    await queue.close()


class CompressedTime:
    """A clock for the chart that moves 30 s whenever the test says: 15 minutes in seconds."""

    def __init__(self) -> None:
        self.now = time.time() - 14.5 * 60

    def __call__(self) -> float:
        return self.now


async def test_overview_screenshot(tmp_path: Path) -> None:
    """Run real workers through 15 minutes of (compressed) traffic and photograph the overview.

    The image is docs/dashboard.png, which the README shows.
    """
    clock = CompressedTime()
    recorder = ActivityRecorder(clock=clock)
    emails = Queue(
        SQLiteDriver(tmp_path / "emails.db", name="emails"), name="emails", backoff=at_once
    )
    default = Queue(SQLiteDriver(tmp_path / "default.db"), name="default", backoff=at_once)
    reports = Queue(SQLiteDriver(tmp_path / "reports.db", name="reports"), name="reports")

    @emails.listener(SendEmail)
    async def send(job: cq.ReceivedJob) -> None:
        if job.data.subject.startswith("bounce"):
            raise RuntimeError(f"550 mailbox unavailable: {job.data.to}")
        if job.data.subject.startswith("flaky") and job.attempt < 2:
            raise ConnectionError("SMTP connection reset")

    @default.listener(int)
    async def compute(job: cq.ReceivedJob) -> None:
        if job.data % 13 == 0:
            raise ValueError(f"cannot process {job.data}")

    app = create_app({"default": default, "emails": emails, "reports": reports}, recorder=recorder)
    async with consuming(emails, default):
        for minute in range(29):
            await traffic(minute, emails, default, recorder)
            clock.now += 30
    await emails.dispatch(
        cq.adjust(SendEmail("eve@example.com", "digest"), defer=timedelta(hours=1))
    )
    for n in range(37):
        await reports.dispatch(cq.adjust({"report": n}, defer=timedelta(minutes=n % 4)))
    for queue in (emails, default, reports):
        recorder.sample(queue.name, await queue.info())
    forget_store_counts(tmp_path / "emails.db", tmp_path / "default.db")

    async with serving(app) as url, browser_page(tmp_path / "profile") as page:
        await page.goto(f"{url}/")
        await expect(page.locator('[data-queue="emails"] rect.processed').first).to_be_visible()
        legend = await page.locator(".legend").bounding_box()
        assert legend is not None
        height = legend["y"] + legend["height"] + 24  # the page down to the chart's legend
        shot = await page.screenshot(clip={"x": 0, "y": 0, "width": 1280, "height": height})

    assert shot.startswith(b"\x89PNG")
    assert len(shot) > 10_000
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.write_bytes(shot)
    for queue in (emails, default, reports):
        await queue.close()


def forget_store_counts(*files: Path) -> None:
    """Delete the throughput counters the workers wrote, behind the drivers' backs.

    They counted the compressed traffic at the real time, all of it in the newest interval;
    the chart is to show the quarter of an hour the recorder's compressed clock saw.
    """
    for file in files:
        with sqlite3.connect(file) as connection:
            connection.execute("DELETE FROM corequeue_throughput")
        connection.close()


def at_once(previous: timedelta) -> timedelta:
    """Retry without waiting: the screenshot's traffic runs in seconds, not minutes."""
    return timedelta(milliseconds=1)


async def traffic(step: int, emails: Queue, default: Queue, recorder: ActivityRecorder) -> None:
    """Dispatch one interval's jobs, sample the backlog, and wait until the workers are done."""
    count = round(9 + 7 * math.sin(step / 3))
    for n in range(count):
        subject = "bounce" if (step * count + n) % 17 == 0 else "flaky" if n % 5 == 0 else "hi"
        await emails.dispatch(cq.adjust(SendEmail(f"user{n}@example.com", subject), max_attempts=3))
        await default.dispatch(step * 10 + n)
    for queue in (emails, default):
        recorder.sample(queue.name, await queue.info())

    async def drained() -> bool:
        infos = [await queue.info() for queue in (emails, default)]
        return all(info.pending == 0 for info in infos)

    await eventually(drained)


# --- attacks from a browser: DNS rebinding and cross-site forms --------------------------------


async def test_a_rebound_host_name_is_refused_by_the_browsers_own_requests(tmp_path: Path) -> None:
    """A page whose name resolves to 127.0.0.1 (DNS rebinding, here a resolver rule) gets 400."""
    queue = Queue(SQLiteDriver(tmp_path / "jobs.db"), name="default")
    job_id = await queue.dispatch(SendEmail("ada@example.com", "secret plans"))
    rule = "--host-resolver-rules=MAP rebound.test 127.0.0.1"

    async with (
        serving(create_app({"default": queue})) as url,
        browser_page(tmp_path / "profile", rule) as page,
    ):
        port = url.rpartition(":")[2]
        rebound = await page.goto(f"http://rebound.test:{port}/queues/default/jobs/{job_id}")
        refused_text = await page.content()
        direct = await page.goto(f"{url}/queues/default/jobs/{job_id}")

    assert rebound is not None
    assert direct is not None
    assert rebound.status == 400
    assert "invalid Host header" in refused_text
    assert "secret plans" not in refused_text
    assert direct.status == 200
    await queue.close()


def attacker_app(dashboard: str, token: str) -> Starlette:
    """A site on another port of the same machine: plants a CSRF cookie and forges POSTs.

    `/plant` sets the cookie (cookies ignore ports, so the dashboard gets it too) and submits a
    form to `/bounce`, which redirects it (307: method and body kept) to the dashboard, so the
    browser sends `Origin: null`. `/direct` submits the form straight to the dashboard.
    """
    target = f"{dashboard}/queues/default/channels/failed/reload"

    def form(action: str) -> HTMLResponse:
        return HTMLResponse(
            f'<form id="f" method="post" action="{action}">'
            f'<input name="csrf_token" value="{token}"></form>'
            "<script>document.getElementById('f').submit()</script>"
        )

    async def plant(request: Request) -> Response:
        response = form("/bounce")
        response.set_cookie(CSRF_COOKIE, token, path="/", samesite="lax")
        return response

    async def bounce(request: Request) -> Response:
        return RedirectResponse(target, status_code=307)

    async def direct(request: Request) -> Response:
        return form(target)

    return Starlette(
        routes=[
            Route("/plant", plant),
            Route("/bounce", bounce, methods=["POST"]),
            Route("/direct", direct),
        ]
    )


@pytest.mark.parametrize(("route", "origin"), [("plant", "null"), ("direct", "attacker")])
async def test_forged_forms_from_another_origin_are_refused(
    tmp_path: Path, route: str, origin: str
) -> None:
    queue = Queue(SQLiteDriver(tmp_path / "jobs.db"), name="default")
    await queue.dispatch(SendEmail("ada@example.com", "hi"))
    job = await queue.driver.pop()
    await queue.driver.fail(job)

    async with serving(create_app({"default": queue})) as dashboard:
        async with httpx.AsyncClient() as client:
            token = (await client.get(f"{dashboard}/api/csrf")).json()["csrf_token"]
        async with (
            serving(attacker_app(dashboard, token)) as attacker,
            browser_page(tmp_path / "profile") as page,
        ):
            async with page.expect_response(lambda r: r.url.endswith("/reload")) as answer:
                await page.goto(f"{attacker}/{route}")
            response = await answer.value
            sent = await response.request.all_headers()
            text = await response.text()

    assert sent["origin"] == ("null" if origin == "null" else attacker)
    assert response.status == 403
    assert "cross-origin request" in html.unescape(text)
    assert await queue.info() == QueueInfo(failed=1)
    await queue.close()


async def test_results_progress_cancel_and_workers_in_the_browser(tmp_path: Path) -> None:
    driver = SQLiteDriver(tmp_path / "jobs.db", lease=timedelta(milliseconds=900))
    queue = Queue(driver, name="default", keep_results=timedelta(hours=1))
    started = asyncio.Event()

    @queue.listener(str)
    async def work(job: cq.ReceivedJob) -> str:
        if job.data == "slow":
            await job.set_progress(0.4, "step 2 of 5")
            started.set()
            await asyncio.Event().wait()  # runs until cancelled
        return f"done: {job.data}"

    quick = await queue.dispatch("quick")
    slow = await queue.dispatch("slow")

    async def shows_progress() -> bool:
        view = await driver.get_job(slow)
        return view is not None and view.job.progress is not None

    async with (
        serving(create_app({"default": queue})) as url,
        consuming(queue),
        browser_page(tmp_path / "profile") as page,
    ):
        assert await queue.result(quick, timeout=15) == "done: quick"
        await asyncio.wait_for(started.wait(), 15)
        await eventually(shows_progress)

        await page.goto(f"{url}/queues/default/jobs/{quick}")
        await expect(page.locator("[data-channel]")).to_have_text("completed")
        await expect(page.locator("[data-result]")).to_contain_text("done: quick")

        await page.goto(f"{url}/workers")
        await expect(page.locator("tr[data-worker] [data-running]")).to_have_text("1")

        await page.goto(f"{url}/queues/default/channels/reserved")
        row = page.locator(f'tr[data-job-id="{slow}"]')
        await expect(row.locator("[data-progress]")).to_contain_text("40% · step 2 of 5")
        await row.locator('button[data-action="cancel"]').click()
        await expect(page.locator(".notice")).to_contain_text("The job was cancelled")

        with pytest.raises(cq.JobFailed, match="cancelled"):
            await queue.result(slow, timeout=15)
        await page.goto(f"{url}/queues/default/jobs/{slow}")
        await expect(page.locator("[data-channel]")).to_have_text("failed")
        await expect(page.locator("[data-last-error]")).to_have_text("cancelled")
    await queue.close()
