"""Public-API usage that only mypy runs: it checks the signatures users write against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import corequeue as cq


@dataclass
class SendEmail:
    to: str


class Mailer:
    """A Handler object."""

    def listen(self) -> type[SendEmail]:
        return SendEmail

    async def process(self, job: cq.Job) -> None:
        assert isinstance(job.data, SendEmail)


class Reminder:
    """A user class implementing DeferrableJob itself."""

    type = "reminders.Remind"
    data = "call mum"

    def defer(self) -> timedelta:
        return timedelta(days=1)

    def decorate(self, persisted: cq.PersistedJob) -> None:
        persisted.max_attempts = 3


async def uses_the_api(driver: cq.Driver) -> None:
    queue = cq.Queue(driver, parallelism=8, gauge_interval=timedelta(seconds=15))
    queue.subscribe(Mailer())
    queue.subscribe(cq.listen(SendEmail, lambda job: None))

    @queue.listener(SendEmail)
    async def send(job: cq.Job) -> None: ...

    deferrable: cq.DeferrableJob = Reminder()
    job_id: str = await queue.dispatch(
        cq.adjust(
            cq.job_from(SendEmail("a@example.com")),
            schedule_at=datetime(2030, 1, 1, tzinfo=UTC),
            max_attempts=5,
            timeout=timedelta(seconds=30),
            unique_id="welcome-42",
        )
    )
    await queue.dispatch(deferrable)
    ids: list[str] = await queue.dispatch_many([SendEmail("b"), SendEmail("c")])
    removed: bool = await queue.cancel(job_id)
    info: cq.QueueInfo = await queue.info()
    moved: int = await driver.reload(cq.Channel.FAILED)
    await driver.flush("timeout")
    sync = cq.SyncDispatcher()
    sync.subscribe(cq.listen(int, send))
    await sync.dispatch(cq.job_from(100))
    del ids, removed, info, moved
