"""Who gets in: a token (bearer or login page), basic auth, or, on loopback, anyone."""

from __future__ import annotations

import base64

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from corequeue.drivers.base import QueueInfo
from corequeue.queue import Queue
from corequeue.web import create_app
from corequeue.web.security import SESSION_COOKIE, is_loopback, safe_next
from tests.web.support import client_of, csrf_token, park_failed

TOKEN = "correct-horse-battery-staple"


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {encoded}"}


# --- token --------------------------------------------------------------------------------


async def test_api_needs_the_token(queue: Queue) -> None:
    async with client_of(create_app({"default": queue}, token=TOKEN)) as client:
        anonymous = await client.get("/api/info")
        wrong = await client.get("/api/info", headers={"authorization": "Bearer nope"})
        right = await client.get("/api/info", headers={"authorization": f"Bearer {TOKEN}"})

    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "authentication required" in anonymous.json()["error"]
    assert right.status_code == 200


async def test_pages_send_people_to_the_login_page_and_back(queue: Queue) -> None:
    async with client_of(create_app({"default": queue}, token=TOKEN)) as client:
        page = await client.get("/queues/default/channels/failed?type=x")
        form = await client.get(page.headers["location"])
        token = await csrf_token(client, page.headers["location"])
        refused = await client.post(
            "/login", data={"csrf_token": token, "token": "nope", "next": "/queues/default"}
        )
        login = await client.post(
            "/login", data={"csrf_token": token, "token": TOKEN, "next": "/queues/default"}
        )
        inside = await client.get("/queues/default/channels/failed")

    assert page.status_code == 303
    assert (
        page.headers["location"] == "/login?next=%2Fqueues%2Fdefault%2Fchannels%2Ffailed%3Ftype%3Dx"
    )
    assert form.status_code == 200
    assert 'name="token"' in form.text
    assert refused.status_code == 401
    assert "That token is not right." in refused.text
    assert login.status_code == 303
    assert login.headers["location"] == "/queues/default"
    assert TOKEN not in login.headers["set-cookie"]
    assert inside.status_code == 200
    assert "Log out" in inside.text


async def test_logged_in_actions_still_need_the_csrf_token(queue: Queue) -> None:
    await park_failed(queue, "a", "boom")
    async with client_of(create_app({"default": queue}, token=TOKEN)) as client:
        login = await csrf_token(client, "/login")
        await client.post("/login", data={"csrf_token": login, "token": TOKEN, "next": "/"})
        token = await csrf_token(client, "/")

        without = await client.post("/queues/default/channels/failed/reload")
        with_token = await client.post(
            "/queues/default/channels/failed/reload", data={"csrf_token": token}
        )

    assert without.status_code == 403
    assert with_token.status_code == 303
    assert await queue.info() == QueueInfo(waiting=1)


async def test_bearer_requests_need_no_csrf_token(queue: Queue) -> None:
    await park_failed(queue, "a", "boom")
    headers = {"authorization": f"Bearer {TOKEN}"}

    async with client_of(create_app({"default": queue}, token=TOKEN)) as client:
        response = await client.post("/api/queues/default/channels/failed/reload", headers=headers)

    assert response.json() == {"default": {"failed": 1}}


async def test_logout_forgets_the_session(queue: Queue) -> None:
    async with client_of(create_app({"default": queue}, token=TOKEN)) as client:
        login = await csrf_token(client, "/login")
        await client.post("/login", data={"csrf_token": login, "token": TOKEN, "next": "/"})
        out = await client.post("/logout", data={"csrf_token": await csrf_token(client, "/")})
        after = await client.get("/")

    assert out.status_code == 303
    assert SESSION_COOKIE not in client.cookies
    assert after.status_code == 303
    assert after.headers["location"].startswith("/login")


async def test_login_page_and_static_files_are_open(queue: Queue) -> None:
    async with client_of(create_app({"default": queue}, token=TOKEN)) as client:
        login = await client.get("/login")
        css = await client.get("/static/dashboard.css")

    assert login.status_code == css.status_code == 200


# --- basic auth ---------------------------------------------------------------------------


async def test_basic_auth_prompts_and_admits(queue: Queue) -> None:
    app = create_app({"default": queue}, basic_auth=("ops", "s3cret"))

    async with client_of(app) as client:
        prompt = await client.get("/")
        wrong_user = await client.get("/", headers=basic("root", "s3cret"))
        wrong_password = await client.get("/api/info", headers=basic("ops", "nope"))
        malformed = await client.get("/", headers={"authorization": "Basic !!!"})
        right = await client.get("/", headers=basic("ops", "s3cret"))

    assert prompt.status_code == 401
    assert prompt.headers["www-authenticate"].startswith('Basic realm="corequeue dashboard"')
    assert wrong_user.status_code == wrong_password.status_code == malformed.status_code == 401
    assert right.status_code == 200


async def test_basic_auth_actions_still_need_the_csrf_token(queue: Queue) -> None:
    await park_failed(queue, "a", "boom")
    credentials = basic("ops", "s3cret")

    async with client_of(create_app({"default": queue}, basic_auth=("ops", "s3cret"))) as client:
        # Browsers send cached basic credentials by themselves: they prove nothing about intent.
        without = await client.post(
            "/api/queues/default/channels/failed/reload", headers=credentials
        )
        token = (await client.get("/api/csrf", headers=credentials)).json()["csrf_token"]
        with_token = await client.post(
            "/api/queues/default/channels/failed/reload",
            headers={**credentials, "x-csrf-token": token},
        )

    assert without.status_code == 403
    assert with_token.status_code == 200


async def test_mounted_dashboard_redirects_to_its_own_login(queue: Queue) -> None:
    outer = Starlette(routes=[Mount("/ops", app=create_app({"default": queue}, token=TOKEN))])

    async with client_of(outer) as client:
        page = await client.get("/ops/queues/default")
        api = await client.get("/ops/api/info")

    assert page.headers["location"] == "/ops/login?next=%2Fqueues%2Fdefault"
    assert api.status_code == 401


# --- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
        ("dashboard.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/queues/default", "/queues/default"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
    ],
)
def test_login_only_sends_people_back_inside_the_dashboard(target: str | None, safe: str) -> None:
    assert safe_next(target) == safe


async def test_unauthenticated_client_cannot_read_jobs(queue: Queue) -> None:
    job_id = await park_failed(queue, {"card": "4111 1111 1111 1111"}, "boom")

    async with client_of(create_app({"default": queue}, token=TOKEN)) as client:
        answers = [
            await client.get(path)
            for path in (
                f"/queues/default/jobs/{job_id}",
                f"/api/queues/default/jobs/{job_id}",
                "/live/overview",
            )
        ]

    assert all(answer.status_code in {303, 401} for answer in answers)
    assert all("4111" not in answer.text for answer in answers)
