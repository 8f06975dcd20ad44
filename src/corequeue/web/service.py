"""What the dashboard's pages and JSON API both do: read queues and act on them.

`Dashboard` holds the queues and options of one app; its methods raise `Problem` (a message
and an HTTP status) for anything a person or script asked wrongly, which pages render as an
error page and the API as `{"error": ...}`. `job_document()` is the one JSON form of a job.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from corequeue.codec import MAX_DEPTH, nested_deeper
from corequeue.drivers.base import (
    Channel,
    GroupCounts,
    InspectDriver,
    JobView,
    QueueInfo,
    WorkerInfo,
    reloadable,
)
from corequeue.errors import InvalidOption
from corequeue.metrics import FanOut, JobMetrics
from corequeue.periodic import PeriodicInfo, slot_job_id
from corequeue.queue import Queue
from corequeue.web.activity import ActivityRecorder, Bucket

PAGE_SIZE = 50
"""Jobs on one page of a channel view."""

MAX_GROUPS_SHOWN = 50
"""Groups a queue page lists, busiest first."""

MAX_SHOWN_CHARS = 10_000
"""The most characters of a payload shown as text because it cannot be shown as JSON."""


class Problem(Exception):
    """A request the dashboard cannot serve: `message` for people, `status` for HTTP."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Payload:
    """A job's payload as the dashboard shows it."""

    encoding: str  # "json", "text", "base64" or "hidden"
    text: str
    value: Any = None  # the parsed JSON value, for the API
    note: str = ""  # why it is shown as it is, when that is not plain


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """One periodic schedule of a queue as the dashboard shows it.

    Attributes:
        name: The schedule's name.
        info: What the queue declares (schedule, zone, misfire, next run); None for a name only
            the store knows (declared by workers elsewhere, or by none any more).
        last_slot_ms: The last slot the store recorded as enqueued; None if none.
        last_job_found: Whether the last slot's job is still in the store (it can be opened).
    """

    name: str
    info: PeriodicInfo | None
    last_slot_ms: int | None
    last_job_found: bool = False

    @property
    def when(self) -> str:
        """The schedule as declared: the cron expression, or `every <interval>`."""
        if self.info is None:
            return ""
        schedule = self.info.schedule
        return schedule if isinstance(schedule, str) else f"every {schedule}"

    @property
    def last_job_id(self) -> str | None:
        """The id of the last slot's job, `periodic:<name>:<slot ms>`."""
        return None if self.last_slot_ms is None else slot_job_id(self.name, self.last_slot_ms)

    @property
    def last_run(self) -> datetime | None:
        """The last slot enqueued, in UTC."""
        if self.last_slot_ms is None:
            return None
        return _EPOCH + timedelta(milliseconds=self.last_slot_ms)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Dashboard:
    """The queues one dashboard shows, and everything it does with them.

    Args:
        queues: The queues by name.
        show_payloads: Whether payloads are shown (pages) and returned (API).
        recorder: Counts finished attempts and samples backlogs for the chart; it is added to
            each queue's metrics, so attempts finished in this process are counted.
    """

    def __init__(
        self, queues: Mapping[str, Queue], *, show_payloads: bool, recorder: ActivityRecorder
    ) -> None:
        self.queues = dict(queues)
        self.show_payloads = show_payloads
        self.recorder = recorder
        for queue in self.queues.values():
            _observe_with(queue, recorder)

    @property
    def names(self) -> list[str]:
        """The queue names, in the order given."""
        return list(self.queues)

    def queue(self, name: str) -> Queue:
        """Return queue `name`; raise Problem 404 naming the known ones."""
        try:
            return self.queues[name]
        except KeyError:
            known = ", ".join(self.queues) or "none"
            raise Problem(f"unknown queue {name!r}; this dashboard shows: {known}", 404) from None

    def inspector(self, name: str) -> InspectDriver | None:
        """Return the driver of queue `name` if it can list jobs."""
        driver = self.queue(name).driver
        return driver if isinstance(driver, InspectDriver) else None

    async def info(self, name: str) -> QueueInfo:
        """Return the channel counts of queue `name` (and offer them to the chart)."""
        info = await self.queue(name).info()
        self.recorder.sample(name, info)
        return info

    async def infos(self) -> dict[str, QueueInfo]:
        """Return the channel counts of every queue."""
        return {name: await self.info(name) for name in self.queues}

    async def activity(self, name: str) -> list[Bucket]:
        """Return the chart's intervals of queue `name`: finished attempts and the backlog.

        Finished attempts come from the store's throughput counters, which every worker adds
        to once per renewal period, so the chart shows the whole fleet wherever the dashboard
        runs. Mounted in a worker process, the dashboard also counts that worker's attempts at
        once; each interval shows the larger of the two, so the newest bar does not wait for
        the next heartbeat. A driver without counters (one of your own) shows this process's
        counts only.
        """
        local = self.recorder.buckets(name)
        try:
            since = datetime.fromtimestamp(local[0].start, UTC)
            stored = await self.queue(name).driver.throughput(since)
        except Exception:  # no counters in this store: this process's own counts
            return local
        by_start = {int(count.start.timestamp()): count for count in stored}
        merged = []
        for bucket in local:
            count = by_start.get(int(bucket.start))
            if count is None or count.processed + count.retried + count.failed <= bucket.finished:
                merged.append(bucket)
                continue
            merged.append(
                Bucket(bucket.start, count.processed, count.retried, count.failed, bucket.backlog)
            )
        return merged

    async def sample_all(self) -> None:
        """Read the counts of every queue that is due a chart sample."""
        for name in self.queues:
            if self.recorder.needs_sample(name):
                await self.info(name)

    async def group_counts(self, name: str) -> list[tuple[str, GroupCounts]]:
        """Return the busiest groups of queue `name` (most reserved, then waiting), at most 50.

        Empty when the queue's driver cannot inspect jobs.
        """
        inspector = self.inspector(name)
        if inspector is None:
            return []
        counts = await inspector.group_counts()
        busiest = sorted(counts.items(), key=lambda item: (-item[1].reserved, -item[1].waiting))
        return busiest[:MAX_GROUPS_SHOWN]

    async def schedules(self, name: str) -> list[ScheduleView]:
        """Return the schedules queue `name` declares, then the other names its store knows."""
        queue = self.queue(name)
        declared = await queue.periodic_schedules()
        stored = await queue.driver.schedule_slots()
        inspector = self.inspector(name)
        named = {info.name: info for info in declared}
        names = [*named, *sorted(set(stored) - set(named))]
        views = []
        for schedule in names:
            view = ScheduleView(schedule, named.get(schedule), stored.get(schedule))
            if inspector is not None and view.last_job_id is not None:
                found = await inspector.get_job(view.last_job_id) is not None
                view = ScheduleView(view.name, view.info, view.last_slot_ms, found)
            views.append(view)
        return views

    async def list_jobs(
        self, name: str, channel: str, *, offset: int, limit: int, job_type: str | None
    ) -> list[JobView]:
        """Return a page of the jobs of one channel."""
        parsed = channel_of(channel)
        try:
            return await self._inspector(name).list_jobs(
                parsed, offset=offset, limit=limit, job_type=job_type
            )
        except InvalidOption as exc:
            raise Problem(str(exc), 400) from None

    async def job(self, name: str, job_id: str) -> JobView:
        """Return job `job_id` of queue `name`; raise Problem 404 when it is not there."""
        view = await self._inspector(name).get_job(job_id)
        if view is None:
            raise Problem(
                f"no job {job_id!r} in queue {name!r}: it finished, was deleted, or never was",
                404,
            )
        return view

    async def reload(self, name: str, channel: str) -> int:
        """Move every job of a failed or timeout channel back to waiting; return how many."""
        try:
            parsed = reloadable(channel_of(channel))
        except InvalidOption as exc:
            raise Problem(str(exc), 400) from None
        return await self.queue(name).driver.reload(parsed)

    async def flush(self, name: str, channel: str) -> int:
        """Delete every job of a channel; return how many there were just before."""
        parsed = channel_of(channel)
        queue = self.queue(name)
        count = getattr(await queue.info(), parsed.value)
        await queue.driver.flush(parsed)
        return int(count)

    async def retry(self, name: str, job_id: str) -> None:
        """Move one failed or timeout job back to waiting."""
        if not await self._inspector(name).retry_job(job_id):
            raise Problem(f"no failed or timeout job {job_id!r} in queue {name!r}", 404)

    async def delete(self, name: str, job_id: str) -> None:
        """Delete one waiting, delayed, failed or timeout job."""
        if not await self._inspector(name).delete_job(job_id):
            raise Problem(
                f"no waiting, delayed, failed or timeout job {job_id!r} in queue {name!r}", 404
            )

    async def cancel(self, name: str, job_id: str) -> None:
        """Cancel one waiting or delayed job, or ask the worker running it to stop it."""
        if not await self.queue(name).cancel(job_id):
            raise Problem(f"no waiting, delayed or running job {job_id!r} in queue {name!r}", 404)

    async def workers(self) -> dict[str, list[WorkerInfo]]:
        """Return the live workers of every queue, by queue name."""
        return {name: await self.queue(name).workers() for name in self.names}

    def result(self, view: JobView) -> Payload | None:
        """Return the kept result of a completed job as shown (None: it has none)."""
        if view.job.result is None:
            return None
        if not self.show_payloads:
            return Payload("hidden", "")
        return payload_of(view.job.result)

    def payload(self, view: JobView) -> Payload:
        """Return the payload of `view` as shown: pretty JSON, text, base64, or hidden."""
        if not self.show_payloads:
            return Payload("hidden", "")
        return payload_of(view.job.value)

    def _inspector(self, name: str) -> InspectDriver:
        driver = self.inspector(name)
        if driver is None:
            kind = type(self.queue(name).driver).__name__
            raise Problem(f"the driver of queue {name!r} ({kind}) cannot list jobs", 501)
        return driver


def channel_of(channel: str) -> Channel:
    """Return `channel` as a Channel; raise Problem 404 naming the channels."""
    try:
        return Channel(channel)
    except ValueError:
        names = ", ".join(c.value for c in Channel)
        raise Problem(f"unknown channel {channel!r}; channels: {names}", 404) from None


def payload_of(value: bytes) -> Payload:
    """Show payload bytes as pretty JSON when they are JSON, else as text, else base64.

    Never unpickles or otherwise runs anything: a pickled payload shows as base64. JSON nested
    deeper than the codec writes (`MAX_DEPTH`), which no reader could walk without running out
    of stack, shows as text, cut at `MAX_SHOWN_CHARS`.
    """
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return Payload("base64", base64.b64encode(value).decode())
    if nested_deeper(value, MAX_DEPTH):
        return _cut(text, f"nested more than {MAX_DEPTH} levels deep: shown as text")
    try:
        parsed = json.loads(text)
    except ValueError:
        return Payload("text", text)
    return Payload("json", json.dumps(parsed, indent=2, ensure_ascii=False), parsed)


def _cut(text: str, why: str) -> Payload:
    """The payload as text, at most MAX_SHOWN_CHARS of it, saying why and what was left out."""
    if len(text) <= MAX_SHOWN_CHARS:
        return Payload("text", text, note=why)
    left_out = len(text) - MAX_SHOWN_CHARS
    return Payload(
        "text", text[:MAX_SHOWN_CHARS], note=f"{why}; the last {left_out} characters left out"
    )


def job_document(dashboard: Dashboard, queue: str, view: JobView) -> dict[str, Any]:
    """Return the JSON API's form of a job (see the OpenAPI schema `Job`)."""
    job = view.job
    payload = dashboard.payload(view)
    document: dict[str, Any] = {
        "id": job.id,
        "type": job.type,
        "queue": queue,
        "channel": view.channel.value,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "due_at": view.due_at.isoformat() if view.due_at else None,
        "handle_timeout_seconds": job.handle_timeout.total_seconds(),
        "backoff_seconds": job.backoff.total_seconds(),
        "last_error": job.last_error,
        "payload_encoding": payload.encoding,
        "payload": None,
        "payload_note": payload.note or None,
    }
    if payload.encoding == "json":
        document["payload"] = payload.value
    elif payload.encoding != "hidden":
        document["payload"] = payload.text
    progress = job.progress
    document["progress"] = (
        None if progress is None else {"fraction": progress.fraction, "message": progress.message}
    )
    result = dashboard.result(view)
    document["result"] = None
    if result is not None and result.encoding == "json":
        document["result"] = result.value
    elif result is not None and result.encoding != "hidden":
        document["result"] = result.text
    return document


def worker_document(queue: str, worker: WorkerInfo) -> dict[str, Any]:
    """Return the JSON API's form of a worker (see the OpenAPI schema `Worker`)."""
    return {
        "queue": queue,
        "id": worker.id,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "started_at": worker.started_at.isoformat(),
        "last_seen": worker.last_seen.isoformat(),
        "running": worker.running,
    }


def schedule_document(view: ScheduleView) -> dict[str, Any]:
    """Return the JSON API's form of a schedule (see the OpenAPI schema `Schedule`)."""
    info = view.info
    schedule = None if info is None else info.schedule
    next_run = None if info is None else info.next_run
    last_run = view.last_run
    return {
        "name": view.name,
        "declared": info is not None,
        "schedule": schedule if isinstance(schedule, str) else None,
        "interval_seconds": schedule.total_seconds() if isinstance(schedule, timedelta) else None,
        "tz": None if info is None else info.tz,
        "misfire": None if info is None else info.misfire,
        "next_run": None if next_run is None else next_run.isoformat(),
        "last_run": None if last_run is None else last_run.isoformat(),
        "last_job_id": view.last_job_id,
        "last_job_found": view.last_job_found,
    }


def _observe_with(queue: Queue, recorder: ActivityRecorder) -> None:
    """Add `recorder` to the metrics of `queue`, once."""
    current: JobMetrics | None = queue.metrics
    if current is recorder or (
        isinstance(current, FanOut) and any(r is recorder for r in current.receivers)
    ):
        return
    queue.metrics = FanOut(current, recorder)
