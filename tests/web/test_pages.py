"""The dashboard's pages: what they show, escaped, paged and filtered, mounted or not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

import corequeue as cq
from corequeue.drivers.in_process import InProcessDriver
from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.queue import Queue
from corequeue.web import create_app
from tests.web.support import block, client_of, job_ids, park_failed


@dataclass
class SendEmail:
    to: str
    subject: str


async def test_overview_shows_every_queue_with_its_channel_counts(tmp_path: Path) -> None:
    default = Queue(SQLiteDriver(tmp_path / "jobs.db"), name="default")
    emails = Queue(SQLiteDriver(tmp_path / "jobs.db", name="emails"), name="emails")
    await emails.dispatch(SendEmail("ada@example.com", "hi"))
    await emails.dispatch(
        cq.adjust(SendEmail("bob@example.com", "later"), defer=timedelta(hours=1))
    )

    async with client_of(create_app({"default": default, "emails": emails})) as client:
        response = await client.get("/")

    assert response.status_code == 200
    html = response.text
    assert 'data-queue="default"' in html
    assert 'data-queue="emails"' in html
    emails_card = html[html.index('data-queue="emails"') :]
    assert '<li class="count waiting nonzero" data-channel="waiting">' in emails_card
    assert '<span class="n">1</span><span class="label">delayed</span>' in emails_card
    assert "<svg" in html
    assert "attempts finished in the last 15 minutes" in html
    await default.close()
    await emails.close()


async def test_live_part_of_the_overview_is_served_alone(client: httpx.AsyncClient) -> None:
    response = await client.get("/live/overview")

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div class="cards">')
    assert "<html" not in response.text


async def test_channel_page_lists_jobs_with_attempts_due_time_and_last_error(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    job_id = await park_failed(queue, SendEmail("a@example.com", "hi"), "SMTP said <no>")

    response = await client.get("/queues/default/channels/failed")

    assert job_ids(response.text) == [job_id]
    assert "SMTP said &lt;no&gt;" in response.text
    assert "<no>" not in response.text
    assert "1/1" in response.text
    assert 'data-action="reload"' in response.text


async def test_delayed_jobs_show_when_they_are_due(client: httpx.AsyncClient, queue: Queue) -> None:
    await queue.dispatch(cq.adjust("later", defer=timedelta(hours=2), unique_id="later"))

    response = await client.get("/queues/default/channels/delayed")

    assert job_ids(response.text) == ["later"]
    assert "UTC (in 1" in response.text  # "in 119m" or "in 1h", by the second it renders
    assert 'data-action="cancel"' in response.text
    assert 'data-action="reload"' not in response.text


async def test_channel_page_pages_through_jobs(client: httpx.AsyncClient, queue: Queue) -> None:
    ids = [await queue.dispatch(cq.adjust(n, unique_id=f"job-{n:03}")) for n in range(60)]

    first = await client.get("/queues/default/channels/waiting")
    second = await client.get("/queues/default/channels/waiting?offset=50")

    assert job_ids(first.text) == ids[:50]
    assert 'rel="next"' in first.text
    assert "?offset=50" in first.text
    assert job_ids(second.text) == ids[50:]
    assert 'rel="prev"' in second.text
    assert 'rel="next"' not in second.text
    assert "Jobs 51\u201360 of 60" in second.text


async def test_channel_page_filters_by_job_type(client: httpx.AsyncClient, queue: Queue) -> None:
    await queue.dispatch(cq.adjust("text", unique_id="a-string"))
    await queue.dispatch(cq.adjust(42, unique_id="a-number"))

    response = await client.get("/queues/default/channels/waiting", params={"type": "builtins.int"})

    assert job_ids(response.text) == ["a-number"]
    assert 'value="builtins.int"' in response.text


async def test_job_page_shows_the_payload_pretty_printed_and_escaped(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    job_id = await park_failed(
        queue, SendEmail("a@example.com", "<script>alert(1)</script>"), "Traceback:\n  boom"
    )

    response = await client.get(f"/queues/default/jobs/{job_id}")

    assert response.status_code == 200
    assert "<script>alert" not in response.text
    assert block(response.text, "data-payload") == (
        '{\n  "to": "a@example.com",\n  "subject": "<script>alert(1)</script>"\n}'
    )
    assert block(response.text, "data-last-error") == "Traceback:\n  boom"
    assert 'data-action="retry"' in response.text
    assert 'data-action="delete"' in response.text


async def test_job_ids_with_any_character_have_working_links(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.dispatch(cq.adjust("x", unique_id="user/42?a=b#c d"))

    listing = await client.get("/queues/default/channels/waiting")
    page = await client.get("/queues/default/jobs/user%2F42%3Fa%3Db%23c%20d")

    assert 'href="/queues/default/jobs/user%2F42%3Fa%3Db%23c%20d"' in listing.text
    assert page.status_code == 200
    assert "user/42?a=b#c d" in page.text


async def test_undecodable_and_binary_payloads_are_shown_safely(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.driver.push(
        cq.PersistedJob(id="binary", type="app.Blob", value=b"\x80\x00pickle?"), timedelta(0)
    )

    response = await client.get("/queues/default/jobs/binary")

    assert "(base64, 9 bytes)" in response.text
    assert "gABwaWNrbGU/" in response.text


async def test_payloads_can_be_switched_off(queue: Queue) -> None:
    job_id = await queue.dispatch(SendEmail("secret@example.com", "password reset"))

    async with client_of(create_app({"default": queue}, show_payloads=False)) as client:
        page = await client.get(f"/queues/default/jobs/{job_id}")
        api = await client.get(f"/api/queues/default/jobs/{job_id}")

    assert "secret@example.com" not in page.text
    assert "Payload display is switched off" in page.text
    assert "secret@example.com" not in api.text
    assert (api.json()["payload"], api.json()["payload_encoding"]) == (None, "hidden")


async def test_a_job_that_is_gone_says_so(client: httpx.AsyncClient) -> None:
    response = await client.get("/queues/default/jobs/finished-long-ago")

    assert response.status_code == 404
    assert "it finished, was deleted, or never was" in response.text


async def test_unknown_queue_and_channel_are_not_found(client: httpx.AsyncClient) -> None:
    queue = await client.get("/queues/nope/channels/waiting")
    channel = await client.get("/queues/default/channels/everything")

    assert queue.status_code == 404
    assert "unknown queue &#39;nope&#39;" in queue.text
    assert channel.status_code == 404
    assert "unknown channel" in channel.text


async def test_queue_page_is_its_waiting_channel(client: httpx.AsyncClient) -> None:
    response = await client.get("/queues/default")

    assert response.status_code == 303
    assert response.headers["location"] == "/queues/default/channels/waiting"


async def test_driver_without_inspection_shows_counts_only() -> None:
    class CountsOnly:
        """A driver of one's own that implements the Driver protocol and nothing more."""

        def __init__(self) -> None:
            self._inner = InProcessDriver()

        def __getattr__(self, name: str) -> object:
            if name in {"list_jobs", "get_job", "delete_job", "retry_job"}:
                raise AttributeError(name)
            return getattr(self._inner, name)

    queue = Queue(CountsOnly(), name="custom")  # type: ignore[arg-type]

    async with client_of(create_app({"custom": queue})) as client:
        page = await client.get("/queues/custom/channels/waiting")
        api = await client.get("/api/queues/custom/channels/waiting/jobs")

    assert page.status_code == 200
    assert "cannot list jobs" in page.text
    assert api.status_code == 501


async def test_mounted_dashboard_links_under_its_mount_point(queue: Queue) -> None:
    job_id = await park_failed(queue, "x", "boom")
    outer = Starlette(routes=[Mount("/ops/queues", app=create_app({"default": queue}))])

    async with client_of(outer) as client:
        overview = await client.get("/ops/queues/")
        channel = await client.get("/ops/queues/queues/default/channels/failed")
        css = await client.get("/ops/queues/static/dashboard.css")

    assert 'href="/ops/queues/static/dashboard.css"' in overview.text
    assert 'href="/ops/queues/queues/default/channels/failed"' in overview.text
    assert f'href="/ops/queues/queues/default/jobs/{job_id}"' in channel.text
    assert 'action="/ops/queues/queues/default/channels/failed/reload"' in channel.text
    assert css.status_code == 200


async def test_pages_carry_a_strict_content_security_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text  # the one script is a file, allowed by the policy
