"""The dashboard's buttons: each a POST form with a CSRF token; without one, nothing happens."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from starlette.routing import Route

import corequeue as cq
from corequeue.drivers.base import QueueInfo
from corequeue.queue import Queue
from corequeue.web import create_app
from corequeue.web.security import CSRF_COOKIE
from tests.web.support import BASE_URL, client_of, csrf_token, job_ids, park_failed


async def test_reload_moves_the_failed_channel_back_to_waiting(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await park_failed(queue, "a", "boom")
    await park_failed(queue, "b", "boom")
    token = await csrf_token(client, "/queues/default/channels/failed")

    response = await client.post(
        "/queues/default/channels/failed/reload", data={"csrf_token": token}
    )

    assert response.status_code == 303
    assert response.headers["location"] == ("/queues/default/channels/failed?notice=reloaded&n=2")
    assert await queue.info() == QueueInfo(waiting=2)
    page = await client.get(response.headers["location"])
    assert "Moved 2 jobs back to waiting." in page.text


async def test_flush_asks_first_then_deletes_the_channel(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.dispatch(cq.adjust("later", defer=timedelta(hours=1)))
    confirm = await client.get("/queues/default/channels/delayed/flush")
    token = await csrf_token(client, "/queues/default/channels/delayed/flush")

    unconfirmed = await client.post(
        "/queues/default/channels/delayed/flush", data={"csrf_token": token}
    )
    confirmed = await client.post(
        "/queues/default/channels/delayed/flush", data={"csrf_token": token, "confirm": "delayed"}
    )

    assert "This deletes <strong>every</strong> job" in confirm.text
    assert unconfirmed.status_code == 400
    assert confirmed.status_code == 303
    assert "notice=flushed&n=1" in confirmed.headers["location"]
    assert await queue.info() == QueueInfo()


async def test_retry_moves_one_failed_job_back_to_waiting(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    keep = await park_failed(queue, "a", "boom")
    retry = await park_failed(queue, "b", "boom")
    token = await csrf_token(client)

    response = await client.post(
        f"/queues/default/jobs/{retry}/retry", data={"csrf_token": token, "back": "failed"}
    )

    assert response.status_code == 303
    assert await queue.info() == QueueInfo(waiting=1, failed=1)
    page = await client.get(response.headers["location"])
    assert job_ids(page.text) == [keep]
    assert "The job is back in waiting." in page.text


async def test_delete_removes_one_failed_job(client: httpx.AsyncClient, queue: Queue) -> None:
    job_id = await park_failed(queue, "a", "boom")
    token = await csrf_token(client)

    response = await client.post(
        f"/queues/default/jobs/{job_id}/delete", data={"csrf_token": token}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/?notice=deleted&n=1"
    assert await queue.info() == QueueInfo()


async def test_cancel_removes_a_delayed_job(client: httpx.AsyncClient, queue: Queue) -> None:
    job_id = await queue.dispatch(cq.adjust("later", defer=timedelta(days=30)))
    token = await csrf_token(client)

    response = await client.post(
        f"/queues/default/jobs/{job_id}/cancel", data={"csrf_token": token, "back": "delayed"}
    )
    again = await client.post(f"/queues/default/jobs/{job_id}/cancel", data={"csrf_token": token})

    assert response.status_code == 303
    assert await queue.info() == QueueInfo()
    assert again.status_code == 404
    assert "no waiting, delayed or running job" in again.text


async def test_reload_of_a_channel_that_cannot_be_reloaded_is_refused(
    client: httpx.AsyncClient,
) -> None:
    token = await csrf_token(client)

    response = await client.post(
        "/queues/default/channels/waiting/reload", data={"csrf_token": token}
    )

    assert response.status_code == 400
    assert "only the failed and timeout channels can be reloaded" in response.text


# --- CSRF ---------------------------------------------------------------------------------


def post_routes(queue: Queue) -> list[str]:
    """Every POST path of the app, with its parameters filled in."""
    app = create_app({"default": queue})
    paths = []
    for route in app.routes:
        if isinstance(route, Route) and route.methods and "POST" in route.methods:
            paths.append(
                route.path.replace("{queue}", "default")
                .replace("{channel}", "failed")
                .replace("{job_id:path}", "job-1")
            )
    return paths


async def test_every_post_is_refused_without_a_csrf_token(queue: Queue) -> None:
    await park_failed(queue, "a", "boom")
    paths = post_routes(queue)

    async with client_of(create_app({"default": queue})) as client:
        await client.get("/")  # the cookie half is there; the form half is missing
        answers = {path: await client.post(path, data={"confirm": "failed"}) for path in paths}

    assert len(paths) >= 8
    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(
        paths, 403
    )
    assert await queue.info() == QueueInfo(failed=1)


@pytest.mark.parametrize(
    ("case", "form_token", "cookie_token", "headers"),
    [
        ("no cookie", "valid", None, {}),
        ("different tokens", "valid", "other-valid", {}),
        ("forged signature", "forged", "forged", {}),
        ("cross-origin", "valid", "valid", {"origin": "https://evil.example"}),
    ],
)
async def test_reload_is_refused_without_a_valid_csrf_token(
    queue: Queue, case: str, form_token: str, cookie_token: str | None, headers: dict[str, str]
) -> None:
    await park_failed(queue, "a", "boom")
    app = create_app({"default": queue})
    async with client_of(app) as first, client_of(app) as second:
        tokens = {
            "valid": await csrf_token(first),
            "other-valid": await csrf_token(second),
            "forged": "bm9uY2U.c2lnbmF0dXJlIG9mIG5vIG9uZQ",
        }

    async with client_of(app) as client:
        if cookie_token is not None:
            client.cookies.set(CSRF_COOKIE, tokens[cookie_token])
        response = await client.post(
            "/queues/default/channels/failed/reload",
            data={"csrf_token": tokens[form_token]},
            headers=headers,
        )

    assert response.status_code == 403, case
    assert await queue.info() == QueueInfo(failed=1)


async def test_a_valid_token_from_the_same_origin_is_accepted(queue: Queue) -> None:
    await park_failed(queue, "a", "boom")

    async with client_of(create_app({"default": queue})) as client:
        token = await csrf_token(client)
        response = await client.post(
            "/queues/default/channels/failed/reload",
            data={"csrf_token": token},
            headers={"origin": BASE_URL},
        )

    assert response.status_code == 303
    assert await queue.info() == QueueInfo(waiting=1)


async def test_pause_and_resume_buttons_set_the_stored_flag(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    token = await csrf_token(client, "/queues/default/channels/waiting")

    paused = await client.post("/queues/default/pause", data={"csrf_token": token})
    page = await client.get(paused.headers["location"])

    assert paused.status_code == 303
    assert await queue.is_paused()
    assert 'data-action="resume"' in page.text
    assert "The queue is paused" in page.text

    resumed = await client.post(
        "/queues/default/resume", data={"csrf_token": token, "back": "failed"}
    )

    assert resumed.headers["location"] == "/queues/default/channels/failed?notice=resumed&n=0"
    assert not await queue.is_paused()


async def test_pause_without_csrf_token_changes_nothing(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    response = await client.post("/queues/default/pause", data={})

    assert response.status_code == 403
    assert not await queue.is_paused()


async def test_waiting_jobs_show_priority_and_group(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.dispatch(cq.adjust("x", priority=42, group="tenant-7"))

    page = await client.get("/queues/default/channels/waiting")

    assert '<td class="num">42</td>' in page.text
    assert "<code>tenant-7</code>" in page.text


async def test_queue_page_shows_limits_and_group_counts(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    queue.driver.set_limits(cq.Limits(group_concurrency=1))
    queue.limits = cq.Limits(group_concurrency=1)
    for index in range(3):
        await queue.dispatch(cq.adjust({"n": index}, group="tenant-7"))
    await queue.driver.pop()

    page = await client.get("/queues/default/channels/waiting")

    assert "groupConcurrency: 1" in page.text
    assert (
        '<tr data-group="tenant-7"><td><code>tenant-7</code></td>'
        '<td class="num">1</td><td class="num">2</td></tr>' in page.text
    )
