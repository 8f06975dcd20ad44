"""Attacks on the dashboard: DNS rebinding, cross-site forms, session-less tokens, deep payloads.

Each test is an attack that worked before the dashboard checked the Host header, refused
`Origin: null`, bound CSRF tokens to the session, and showed over-deep payloads as text.
"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from http.cookies import SimpleCookie

import httpx
import pytest

from corequeue.drivers.base import QueueInfo
from corequeue.job import PersistedJob
from corequeue.queue import Queue
from corequeue.web import create_app
from corequeue.web.security import CSRF_COOKIE, SESSION_COOKIE
from corequeue.web.service import MAX_SHOWN_CHARS
from tests.web.support import BASE_URL, client_of, csrf_token, park_failed

TOKEN = "correct-horse-battery-staple"
REBOUND = "http://rebound.attacker.example:8000"
"""A name the attacker made resolve to 127.0.0.1: requests carry it in `Host`."""


# --- 1. DNS rebinding: the Host check -----------------------------------------------------------


async def test_a_rebound_host_name_can_neither_read_payloads_nor_flush(queue: Queue) -> None:
    job_id = await park_failed(queue, {"card": "4111 1111 1111 1111"}, "boom")
    app = create_app({"default": queue})

    async with client_of(app, base_url=REBOUND) as attacker:
        page = await attacker.get(f"/queues/default/jobs/{job_id}")
        api = await attacker.get(f"/api/queues/default/jobs/{job_id}")
        listing = await attacker.get("/api/queues/default/channels/failed/jobs")
        token = (await attacker.get("/api/csrf")).text
        flush = await attacker.post(
            "/queues/default/channels/failed/flush",
            data={"confirm": "failed", "csrf_token": token},
            headers={"origin": REBOUND},
        )

    assert [page.status_code, api.status_code, listing.status_code, flush.status_code] == [400] * 4
    assert "invalid Host header" in page.text
    assert api.json() == {
        "error": "invalid Host header: this dashboard does not answer to that host name"
    }
    assert all("4111" not in answer.text for answer in (page, api, listing))
    assert await queue.info() == QueueInfo(failed=1)


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8000", "http://localhost", "http://[::1]:9000", "http://127.0.0.2:1"],
)
async def test_loopback_names_are_answered_without_credentials(queue: Queue, base_url: str) -> None:
    async with client_of(create_app({"default": queue}), base_url=base_url) as client:
        response = await client.get("/")

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        (["queues.example.com"], "http://queues.example.com", 200),
        (["queues.example.com"], "http://QUEUES.example.com:8443", 200),
        (["queues.example.com"], "http://127.0.0.1", 400),
        (["*.example.com"], "http://ops.example.com", 200),
        (["*.example.com"], "http://example.com", 400),
        (["*.example.com"], "http://evil-example.com", 400),
        (["*"], "http://anything.test", 200),
    ],
)
async def test_allowed_hosts_name_what_the_dashboard_answers_to(
    queue: Queue, allowed: list[str], host: str, status: int
) -> None:
    app = create_app({"default": queue}, allowed_hosts=allowed)

    async with client_of(app, base_url=host) as client:
        response = await client.get("/")

    assert response.status_code == status


async def test_with_credentials_any_host_name_reaches_the_login(queue: Queue) -> None:
    app = create_app({"default": queue}, token=TOKEN)

    async with client_of(app, base_url="https://queues.internal.example") as client:
        response = await client.get("/api/info")

    assert response.status_code == 401


async def test_a_request_without_a_host_header_is_refused(queue: Queue) -> None:
    async with client_of(create_app({"default": queue})) as client:
        request = client.build_request("GET", "/")
        del request.headers["host"]
        response = await client.send(request)

    assert response.status_code == 400


# --- 2. CSRF: Origin null, tokens bound to the session, cookie attributes ---------------------


@pytest.mark.parametrize(
    "path", ["/queues/default/channels/failed/reload", "/api/queues/default/channels/failed/reload"]
)
async def test_origin_null_is_refused_even_with_a_valid_token(queue: Queue, path: str) -> None:
    await park_failed(queue, "a", "boom")

    async with client_of(create_app({"default": queue})) as client:
        token = await csrf_token(client)
        response = await client.post(
            path,
            data={"csrf_token": token},
            headers={"origin": "null", "x-csrf-token": token},
        )

    assert response.status_code == 403
    assert "cross-origin request from 'null' refused" in html.unescape(response.text)
    assert await queue.info() == QueueInfo(failed=1)


async def test_a_cross_site_fetch_without_origin_is_refused(queue: Queue) -> None:
    await park_failed(queue, "a", "boom")

    async with client_of(create_app({"default": queue})) as client:
        token = await csrf_token(client)
        response = await client.post(
            "/queues/default/channels/failed/reload",
            data={"csrf_token": token},
            headers={"sec-fetch-site": "same-site"},
        )

    assert response.status_code == 403
    assert await queue.info() == QueueInfo(failed=1)


async def test_a_token_from_the_public_login_page_is_worthless_in_a_session(
    queue: Queue,
) -> None:
    await park_failed(queue, "a", "boom")
    app = create_app({"default": queue}, token=TOKEN)
    async with client_of(app) as attacker:
        planted = await csrf_token(attacker, "/login")  # no credentials needed for this page

    async with client_of(app) as victim:
        login = await csrf_token(victim, "/login")
        await victim.post("/login", data={"csrf_token": login, "token": TOKEN, "next": "/"})
        victim.cookies.set(CSRF_COOKIE, planted)  # tossed in from a sibling host or port
        forged = await victim.post(
            "/queues/default/channels/failed/reload",
            data={"csrf_token": planted},
            headers={"origin": BASE_URL},
        )

    assert forged.status_code == 403
    assert "invalid CSRF token" in forged.text
    assert await queue.info() == QueueInfo(failed=1)


async def test_a_token_of_one_session_is_worthless_in_another(queue: Queue) -> None:
    await park_failed(queue, "a", "boom")
    app = create_app({"default": queue}, token=TOKEN)
    tokens = []
    for _ in range(2):
        async with client_of(app) as client:
            login = await csrf_token(client, "/login")
            await client.post("/login", data={"csrf_token": login, "token": TOKEN, "next": "/"})
            tokens.append(await csrf_token(client, "/"))
            own = await client.post(
                "/api/queues/default/channels/failed/reload",
                headers={"x-csrf-token": tokens[-1]},
            )
            client.cookies.set(CSRF_COOKIE, tokens[0])
            other = await client.post(
                "/api/queues/default/channels/failed/reload",
                headers={"x-csrf-token": tokens[0]},
            )

    assert tokens[0] != tokens[1]
    assert own.status_code == 200
    assert other.status_code == 403  # the second session with the first one's token


async def test_each_login_is_a_new_signed_session_that_never_holds_the_token(
    queue: Queue,
) -> None:
    app = create_app({"default": queue}, token=TOKEN)
    sessions = []
    for _ in range(2):
        async with client_of(app) as client:
            login = await csrf_token(client, "/login")
            await client.post("/login", data={"csrf_token": login, "token": TOKEN, "next": "/"})
            sessions.append(client.cookies[SESSION_COOKIE])

    forged = sessions[0].partition(".")[0] + ".0000"
    async with client_of(app, cookies={SESSION_COOKIE: forged}) as client:
        refused = await client.get("/api/info")

    assert sessions[0] != sessions[1]
    assert all(TOKEN not in session for session in sessions)
    assert refused.status_code == 401


def cookies_of(response: httpx.Response) -> dict[str, SimpleCookie]:
    found = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        found.update({name: cookie for name in cookie})
    return found


async def test_over_tls_cookies_are_host_prefixed_secure_and_strict(queue: Queue) -> None:
    app = create_app({"default": queue}, token=TOKEN)

    async with client_of(app, base_url="https://127.0.0.1") as client:
        page = await client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        login = await client.post(
            "/login",
            data={"csrf_token": token.group(1), "token": TOKEN, "next": "/"},
            headers={"origin": "https://127.0.0.1"},
        )

    cookies = {**cookies_of(page), **cookies_of(login)}
    assert set(cookies) == {f"__Host-{CSRF_COOKIE}", f"__Host-{SESSION_COOKIE}"}
    for name, cookie in cookies.items():
        morsel = cookie[name]
        assert morsel["secure"] is True
        assert morsel["httponly"] is True
        assert morsel["samesite"].lower() == "strict"
        assert morsel["path"] == "/"
        assert not morsel["domain"]
    assert login.status_code == 303


async def test_over_plain_http_cookies_are_strict_and_scoped_to_the_dashboard(
    queue: Queue,
) -> None:
    async with client_of(create_app({"default": queue})) as client:
        page = await client.get("/")

    morsel = cookies_of(page)[CSRF_COOKIE][CSRF_COOKIE]
    assert morsel["samesite"].lower() == "strict"
    assert morsel["httponly"] is True
    assert morsel["path"] == "/"


# --- 3. A payload nested too deeply for any reader --------------------------------------------


async def push_raw(queue: Queue, job_id: str, value: bytes) -> None:
    """Store a payload as it came, as an older release or another writer may have."""
    await queue.driver.push(PersistedJob(id=job_id, type="t", value=value), timedelta(0))


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_a_deep_payload_shows_as_text_and_the_pages_around_it_work(
    client: httpx.AsyncClient, queue: Queue, depth: int
) -> None:
    await push_raw(queue, "deep", b"[" * depth + b"]" * depth)
    await push_raw(queue, "fine", b'{"to": "ada@example.com"}')

    page = await client.get("/queues/default/jobs/deep")
    job = await client.get("/api/queues/default/jobs/deep")
    listing = await client.get("/api/queues/default/channels/waiting/jobs")
    channel = await client.get("/queues/default/channels/waiting")

    assert [page.status_code, job.status_code, listing.status_code, channel.status_code] == [
        200
    ] * 4
    assert "nested more than 256 levels deep: shown as text" in page.text
    assert "data-channel" in page.text  # the rest of the page is there
    document = job.json()
    assert document["payload_encoding"] == "text"
    assert len(document["payload"]) <= MAX_SHOWN_CHARS
    assert document["payload_note"].startswith("nested more than 256 levels deep")
    jobs = {item["id"]: item for item in listing.json()["jobs"]}
    assert jobs["fine"]["payload"] == {"to": "ada@example.com"}
    assert jobs["deep"]["payload_encoding"] == "text"


async def test_a_payload_just_within_the_depth_is_still_pretty_json(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await push_raw(queue, "ok", b"[" * 256 + b"]" * 256)

    job = (await client.get("/api/queues/default/jobs/ok")).json()

    assert job["payload_encoding"] == "json"
    assert json.dumps(job["payload"]).count("[") == 256
