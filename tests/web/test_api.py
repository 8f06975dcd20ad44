"""The JSON API: the shapes the CLI prints, jobs, actions, errors and its OpenAPI document."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

import corequeue as cq
from corequeue.cli import main
from corequeue.config import load_config
from corequeue.drivers.base import QueueInfo
from corequeue.factory import QueueFactory
from corequeue.queue import Queue
from corequeue.web import create_app
from tests.web.support import client_of, park_failed

CONFIG = "queue:\n  default: {path: jobs.db}\n  emails: {path: jobs.db}\n"


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COREQUEUE_CONFIG", raising=False)
    path = tmp_path / "corequeue.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
async def factory(config_file: Path) -> AsyncIterator[QueueFactory]:
    factory = QueueFactory(load_config(config_file), prometheus=False)
    yield factory
    await factory.close()


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in a thread (it runs its own event loop) and return what it printed."""
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().out.strip()


async def test_info_is_what_the_cli_prints(
    factory: QueueFactory, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await park_failed(factory.make("emails"), "x", "boom")
    await factory.make("default").dispatch(cq.adjust("later", defer=timedelta(hours=1)))
    app = create_app({name: factory.make(name) for name in factory.names})

    async with client_of(app) as client:
        response = await client.get("/api/info")
        one = await client.get("/api/info", params={"queue": "emails"})
    printed = await asyncio.to_thread(
        run_cli, ["queue", "info", "--json", "--config", str(config_file)], capsys
    )

    assert response.headers["content-type"] == "application/json"
    assert response.text == printed
    assert one.json() == {"emails": QueueInfo(failed=1).as_dict()}


async def test_reload_and_flush_answer_what_the_cli_prints(
    factory: QueueFactory, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emails = factory.make("emails")
    app = create_app({"emails": emails})
    cli = ["--config", str(config_file), "-q", "emails", "-c", "failed", "--json"]

    for n in range(2):
        await park_failed(emails, n, "boom")
    async with client_of(app) as client:
        token = (await client.get("/api/csrf")).json()["csrf_token"]
        headers = {"x-csrf-token": token}
        reloaded = await client.post("/api/queues/emails/channels/failed/reload", headers=headers)
        await factory.make("emails").driver.flush("waiting")
        for n in range(2):
            await park_failed(emails, n, "boom")
        printed_reload = await asyncio.to_thread(run_cli, ["queue", "reload", *cli], capsys)
        await factory.make("emails").driver.flush("waiting")
        await park_failed(emails, "x", "boom")
        flushed = await client.post("/api/queues/emails/channels/failed/flush", headers=headers)
    await park_failed(emails, "y", "boom")
    printed_flush = await asyncio.to_thread(run_cli, ["queue", "flush", "--yes", *cli], capsys)

    assert reloaded.text == printed_reload == '{"emails": {"failed": 2}}'
    assert flushed.text == printed_flush == '{"emails": {"failed": 1}}'


async def test_jobs_lists_a_page_of_a_channel(client: httpx.AsyncClient, queue: Queue) -> None:
    for n in range(5):
        await queue.dispatch(cq.adjust(n, unique_id=f"j{n}"))
    await queue.dispatch(cq.adjust("text", unique_id="s"))

    page = await client.get(
        "/api/queues/default/channels/waiting/jobs", params={"offset": 1, "limit": 2}
    )
    typed = await client.get(
        "/api/queues/default/channels/waiting/jobs", params={"type": "builtins.str"}
    )

    body = page.json()
    assert (body["count"], body["offset"], body["limit"], body["type"]) == (6, 1, 2, None)
    assert [job["id"] for job in body["jobs"]] == ["j1", "j2"]
    assert [job["id"] for job in typed.json()["jobs"]] == ["s"]


async def test_job_is_described_in_full(client: httpx.AsyncClient, queue: Queue) -> None:
    job_id = await queue.dispatch(
        cq.adjust({"to": "a@example.com"}, defer=timedelta(minutes=5), max_attempts=3)
    )

    job = (await client.get(f"/api/queues/default/jobs/{job_id}")).json()

    assert job["due_at"].endswith("+00:00")
    del job["due_at"]
    assert job == {
        "id": job_id,
        "type": "builtins.dict",
        "queue": "default",
        "channel": "delayed",
        "attempts": 1,
        "max_attempts": 3,
        "handle_timeout_seconds": 3600.0,
        "backoff_seconds": 0.0,
        "last_error": None,
        "payload_encoding": "json",
        "payload": {"to": "a@example.com"},
        "payload_note": None,
        "progress": None,
        "result": None,
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [({"limit": 0}, "limit must be from 1"), ({"offset": "x"}, "offset must be a whole number")],
)
async def test_bad_pages_are_refused(
    client: httpx.AsyncClient, query: dict[str, str | int], message: str
) -> None:
    response = await client.get("/api/queues/default/channels/waiting/jobs", params=query)

    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_job_actions_answer_what_they_did(client: httpx.AsyncClient, queue: Queue) -> None:
    failed = await park_failed(queue, "a", "boom")
    later = await queue.dispatch(cq.adjust("b", defer=timedelta(hours=1)))
    headers = {"x-csrf-token": (await client.get("/api/csrf")).json()["csrf_token"]}

    retried = await client.post(f"/api/queues/default/jobs/{failed}/retry", headers=headers)
    again = await client.post(f"/api/queues/default/jobs/{failed}/retry", headers=headers)
    cancelled = await client.post(f"/api/queues/default/jobs/{later}/cancel", headers=headers)
    deleted = await client.post(f"/api/queues/default/jobs/{failed}/delete", headers=headers)

    assert retried.json() == {"queue": "default", "id": failed, "action": "retry", "done": True}
    assert again.status_code == 404
    assert again.json() == {"error": f"no failed or timeout job {failed!r} in queue 'default'"}
    assert cancelled.json()["done"] is True
    assert deleted.json()["action"] == "delete"
    assert await queue.info() == QueueInfo()


async def test_errors_are_json(client: httpx.AsyncClient) -> None:
    unknown = await client.get("/api/queues/nope/channels/waiting/jobs")
    missing = await client.get("/api/queues/default/jobs/nope")

    assert unknown.status_code == 404
    assert unknown.json() == {"error": "unknown queue 'nope'; this dashboard shows: default"}
    assert missing.status_code == 404
    assert "it finished" in missing.json()["error"]


async def test_activity_shows_the_attempts_workers_counted_in_the_store(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    done = asyncio.Event()

    @queue.listener(int)
    async def count(job: cq.ReceivedJob) -> None:
        done.set()

    await queue.dispatch(7)
    consumer = asyncio.create_task(queue.consume(handle_signals=False))
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        consumer.cancel()  # a stopping worker writes what it counted since its last beat
        await asyncio.gather(consumer, return_exceptions=True)

    activity = (await client.get("/api/queues/default/activity")).json()
    assert activity["bucket_seconds"] == 30
    assert len(activity["buckets"]) == 30
    assert activity["buckets"][-1]["processed"] == 1


async def test_activity_includes_workers_of_other_processes(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.driver.count_finished(5, 2, 1)  # as a worker elsewhere does, once per period

    newest = (await client.get("/api/queues/default/activity")).json()["buckets"][-1]

    assert (newest["processed"], newest["retried"], newest["failed"]) == (5, 2, 1)


def test_openapi_documents_every_api_route(queue: Queue) -> None:
    app = create_app({"default": queue})
    from corequeue.web.openapi import openapi_document

    document = openapi_document()
    routes = {
        re.sub(r"\{(\w+):path\}", r"{\1}", route.path).removeprefix("/api"): route.methods
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api/")
    }

    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == set(routes)
    for path, methods in routes.items():
        documented = {method.upper() for method in document["paths"][path]}
        assert documented <= (methods or set()), path


async def test_openapi_is_served_with_the_mount_point(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json")

    assert response.status_code == 200
    assert response.json()["servers"] == [{"url": "/api"}]
    assert "/info" in response.json()["paths"]
