"""The schedules section of a queue's page and `GET /api/queues/{queue}/periodic`."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx

from corequeue.job import PersistedJob
from corequeue.periodic import slot_job_id
from corequeue.queue import Queue


def schedule_rows(page: str) -> dict[str, str]:
    """The rows of the schedules table, by schedule name (HTML of the row)."""
    return dict(re.findall(r'<tr data-schedule="([^"]*)">(.*?)</tr>', page, re.DOTALL))


def cell(row: str, marker: str) -> str:
    found = re.search(rf"<td {marker}>(.*?)</td>", row, re.DOTALL)
    assert found, f"no {marker} cell in {row}"
    return found.group(1)


async def enqueue_slot(queue: Queue, name: str, slot_ms: int) -> str:
    """Enqueue the job of one slot as a worker's ticker would; return its id."""
    job_id = slot_job_id(name, slot_ms)
    job = PersistedJob(id=job_id, type="builtins.str", value=b'"tick"')
    assert await queue.driver.enqueue_slot(name, slot_ms, job)
    return job_id


def past_slot_ms(seconds_ago: int = 10) -> int:
    return (int(time.time()) - seconds_ago) * 1000


async def test_queue_page_shows_each_schedule_with_its_next_run_and_last_job(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    queue.periodic("0 3 * * *", "report", name="nightly", tz="Europe/Berlin", misfire="once")
    queue.periodic(timedelta(seconds=30), "tick", name="beat")
    slot_ms = past_slot_ms()
    job_id = await enqueue_slot(queue, "beat", slot_ms)

    response = await client.get("/queues/default", follow_redirects=True)

    rows = schedule_rows(response.text)
    assert list(rows) == ["nightly", "beat"]
    assert "<code>0 3 * * *</code>" in rows["nightly"]
    assert "Europe/Berlin · misfire once" in rows["nightly"]
    next_run = cell(rows["nightly"], "data-next-run")
    assert re.search(r" 0[12]:00:00 UTC \(in ", next_run), next_run  # 03:00 Berlin, in UTC
    assert "none yet" in cell(rows["nightly"], "data-last-job")
    assert "<code>every 0:00:30</code>" in rows["beat"]
    last_job = cell(rows["beat"], "data-last-job")
    assert f'href="/queues/default/jobs/periodic%3Abeat%3A{slot_ms}"' in last_job
    assert f"<code>{job_id}</code>" in last_job
    stamp = datetime.fromtimestamp(slot_ms / 1000, UTC)
    assert f"{stamp:%Y-%m-%d %H:%M:%S} UTC" in last_job


async def test_a_last_job_no_longer_stored_is_shown_without_a_link(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    queue.periodic(timedelta(seconds=30), "tick", name="beat")
    job_id = await enqueue_slot(queue, "beat", past_slot_ms())
    await queue.driver.ack(await queue.driver.pop())

    response = await client.get("/queues/default/channels/waiting")

    last_job = cell(schedule_rows(response.text)["beat"], "data-last-job")
    assert job_id in last_job
    assert "href=" not in last_job


async def test_a_schedule_only_the_store_knows_is_shown_as_not_declared_here(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    await enqueue_slot(queue, "<b>legacy</b>", past_slot_ms())

    response = await client.get("/queues/default/channels/failed")

    rows = schedule_rows(response.text)
    assert list(rows) == ["&lt;b&gt;legacy&lt;/b&gt;"]
    assert "not declared here" in cell(rows["&lt;b&gt;legacy&lt;/b&gt;"], "data-next-run")
    assert "<b>legacy" not in response.text


async def test_a_queue_without_schedules_has_no_schedules_section(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/queues/default/channels/waiting")

    assert response.status_code == 200
    assert "Schedules" not in response.text


async def test_api_lists_schedules_with_their_last_job(
    client: httpx.AsyncClient, queue: Queue
) -> None:
    queue.periodic("0 3 * * *", "report", name="nightly", tz="Europe/Berlin")
    queue.periodic(timedelta(seconds=30), "tick", name="beat")
    slot_ms = past_slot_ms()
    await enqueue_slot(queue, "beat", slot_ms)
    await enqueue_slot(queue, "legacy", slot_ms)

    response = await client.get("/api/queues/default/periodic")

    document = response.json()
    assert response.status_code == 200
    assert document["queue"] == "default"
    nightly, beat, legacy = document["schedules"]
    assert nightly["schedule"] == "0 3 * * *"
    assert (nightly["tz"], nightly["misfire"], nightly["declared"]) == (
        "Europe/Berlin",
        "skip",
        True,
    )
    assert datetime.fromisoformat(nightly["next_run"]).hour == 3
    assert (nightly["last_job_id"], nightly["last_job_found"]) == (None, False)
    assert (beat["schedule"], beat["interval_seconds"]) == (None, 30.0)
    assert beat["last_job_id"] == f"periodic:beat:{slot_ms}"
    assert beat["last_job_found"] is True
    assert beat["last_run"] == datetime.fromtimestamp(slot_ms / 1000, UTC).isoformat()
    assert legacy == {
        "name": "legacy",
        "declared": False,
        "schedule": None,
        "interval_seconds": None,
        "tz": None,
        "misfire": None,
        "next_run": None,
        "last_run": beat["last_run"],
        "last_job_id": f"periodic:legacy:{slot_ms}",
        "last_job_found": True,
    }


async def test_api_periodic_of_an_unknown_queue_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/queues/nope/periodic")

    assert response.status_code == 404
    assert response.json()["error"].startswith("unknown queue 'nope'")
