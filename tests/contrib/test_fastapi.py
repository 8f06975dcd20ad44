"""The FastAPI integration with FastAPI's TestClient: the app dispatches, a worker runs the job,
the dashboard is served by the same app, and the lifespan opens and closes the queues."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which name
# a local variable (the Queues of each test).
import threading
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import corequeue as cq
from corequeue.config import parse_config
from corequeue.contrib.fastapi import Queues
from tests.integration.conftest import eventually


def factory_on(path: Path) -> cq.QueueFactory:
    config = parse_config({"queue": {"emails": {"driver": "sqlite", "path": str(path)}}})
    return cq.QueueFactory(config, prometheus=False)


def signup_app(queues: Queues) -> FastAPI:
    app = FastAPI(lifespan=queues.lifespan)
    app.mount("/queues", queues.dashboard(allowed_hosts=["testserver"]))

    @app.post("/signup/{email}")
    async def signup(
        email: str, emails: Annotated[cq.Queue, Depends(queues.queue("emails"))]
    ) -> dict[str, str]:
        return {"job": await emails.dispatch(email)}

    return app


def test_the_app_dispatches_and_its_consumer_runs_the_job(tmp_path: Path) -> None:
    queues = Queues(factory_on(tmp_path / "jobs.db"), consume=["emails"])
    sent: list[tuple[str, str]] = []
    done = threading.Event()

    @queues.factory.make("emails").listener(str)
    async def send(job: cq.ReceivedJob) -> None:
        sent.append((job.id, job.data))
        done.set()

    with TestClient(signup_app(queues)) as client:
        response = client.post("/signup/ada@example.com")
        assert done.wait(10)
        dashboard = client.get("/queues/")

    assert response.status_code == 200
    assert sent == [(response.json()["job"], "ada@example.com")]
    assert dashboard.status_code == 200
    assert "emails" in dashboard.text


async def test_a_job_dispatched_by_the_app_is_run_by_a_separate_worker(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with TestClient(signup_app(Queues(factory_on(path)))) as client:
        job_id = client.post("/signup/ada@example.com").json()["job"]

    worker = factory_on(path)
    queue = worker.make("emails")
    received: list[tuple[str, str]] = []
    queue.subscribe(cq.listen(str, lambda job: received.append((job.id, job.data))))

    async def ran() -> bool:
        return bool(received)

    async with cq.App(worker, queues=["emails"], handle_signals=False):
        await eventually(ran)

    assert received == [(job_id, "ada@example.com")]


def test_the_lifespan_closes_the_queues_when_the_app_stops(tmp_path: Path) -> None:
    queues = Queues(factory_on(tmp_path / "jobs.db"))

    with TestClient(signup_app(queues)) as client:
        assert client.post("/signup/ada@example.com").status_code == 200
        assert set(queues.factory.made) == {"emails"}

    assert dict(queues.factory.made) == {}


def test_an_unknown_queue_name_fails_when_the_app_is_defined(tmp_path: Path) -> None:
    queues = Queues(factory_on(tmp_path / "jobs.db"))

    with pytest.raises(cq.InvalidOption, match="nope"):
        queues.queue("nope")
