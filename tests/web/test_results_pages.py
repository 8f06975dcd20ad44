"""The dashboard's view of results, progress, running-job cancellation and workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

import corequeue as cq
from corequeue.drivers.base import Channel
from corequeue.job import Progress
from corequeue.queue import Queue
from tests.web.support import csrf_token

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def completed(queue: Queue, job_id: str, result: bytes) -> None:
    await queue.driver.push(
        cq.PersistedJob(job_id, "t", b'"in"', keep_result=timedelta(hours=1)), timedelta(0)
    )
    job = await queue.driver.pop()
    job.result = result
    assert await queue.driver.ack(job)


async def running(queue: Queue, job_id: str, progress: Progress | None) -> cq.PersistedJob:
    await queue.driver.push(cq.PersistedJob(job_id, "t", b'"in"'), timedelta(0))
    job = await queue.driver.pop()
    job.progress = progress
    assert await queue.driver.renew_many([job]) == []
    return job


async def test_a_completed_job_shows_its_result(client: httpx.AsyncClient, queue: Queue) -> None:
    await completed(queue, "done", b'{"sum":3}')

    page = await client.get("/queues/default/jobs/done")
    listing = await client.get("/queues/default/channels/completed")
    document = (await client.get("/api/queues/default/jobs/done")).json()

    assert page.status_code == 200
    assert "data-result" in page.text
    assert "&#34;sum&#34;: 3" in page.text or '"sum": 3' in page.text
    assert "result kept until" in page.text
    assert 'data-job-id="done"' in listing.text
    assert (document["channel"], document["result"]) == ("completed", {"sum": 3})


async def test_a_running_job_shows_its_progress(client: httpx.AsyncClient, queue: Queue) -> None:
    await running(queue, "busy", Progress(0.3, "page 3 of 10"))

    page = await client.get("/queues/default/jobs/busy")
    listing = await client.get("/queues/default/channels/reserved")
    document = (await client.get("/api/queues/default/jobs/busy")).json()

    assert '<progress max="1" value="0.3">' in page.text
    assert "30% · page 3 of 10" in page.text
    assert "data-progress" in listing.text
    assert document["progress"] == {"fraction": 0.3, "message": "page 3 of 10"}


async def test_the_cancel_button_of_a_running_job_asks_its_worker(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    job = await running(queue, "busy", None)
    token = await csrf_token(client, "/queues/default/channels/reserved")
    listing = await client.get("/queues/default/channels/reserved")
    assert 'data-action="cancel"' in listing.text

    response = await client.post(
        "/queues/default/jobs/busy/cancel", data={"csrf_token": token, "back": "reserved"}
    )

    assert response.status_code == 303
    await queue.driver.renew_many([job])
    assert job.cancel_requested is True
    view = await queue.driver.get_job("busy")  # type: ignore[attr-defined]
    assert view.channel is Channel.RESERVED


async def test_the_workers_page_and_api_list_live_workers(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await queue.driver.beat(cq.WorkerInfo("box:7:aa", "box", 7, STARTED, STARTED, 2))

    page = await client.get("/workers")
    document = (await client.get("/api/workers")).json()

    assert page.status_code == 200
    assert 'data-worker="box:7:aa"' in page.text
    assert [(w["id"], w["hostname"], w["pid"], w["running"]) for w in document["workers"]] == [
        ("box:7:aa", "box", 7, 2)
    ]


async def test_the_workers_page_says_when_none_beat(client: httpx.AsyncClient) -> None:
    page = await client.get("/workers")

    assert "No live workers." in page.text
