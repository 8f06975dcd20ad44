"""Sentry: a job that fails is reported with its id, type, attempt and queue.

Needs `pip install 'corequeue[sentry]'`. Set SENTRY_DSN to send events to your project; without
it, this script prints what it would send.

Prints (without SENTRY_DSN):
    event: ValueError: card declined; job builtins.int attempt 1 of 1 on queue billing
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

import corequeue as cq
from corequeue.contrib.sentry import CONTEXT, SentryMiddleware


class PrintingTransport(Transport):
    """Prints a line per event instead of sending it."""

    def capture_envelope(self, envelope: Envelope) -> None:
        event: Any = envelope.get_event()
        if event is None:
            return
        [error] = event["exception"]["values"]
        job = event["contexts"][CONTEXT]
        print(
            f"event: {error['type']}: {error['value']}; job {job['type']} attempt "
            f"{job['attempt']} of {job['max_attempts']} on queue {job['queue']}"
        )


async def main() -> None:
    dsn = os.environ.get("SENTRY_DSN")
    if dsn:
        sentry_sdk.init(dsn=dsn)
    else:
        sentry_sdk.init(
            dsn="https://public@example.invalid/1",
            transport=PrintingTransport(),
            default_integrations=False,
        )
    events = cq.SyncDispatcher()
    aborted = asyncio.Event()
    events.subscribe(cq.listen(cq.BeforeAbortPayload, lambda event: aborted.set()))
    queue = cq.Queue(
        cq.InProcessDriver(pop_interval=timedelta(milliseconds=50)),
        name="billing",
        middleware=[SentryMiddleware()],
        event_dispatcher=events,
    )

    @queue.listener(int)
    async def charge(job: cq.ReceivedJob) -> None:
        raise ValueError("card declined")

    await queue.dispatch(42)
    worker = asyncio.create_task(queue.consume(handle_signals=False))
    await aborted.wait()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    sentry_sdk.flush()


if __name__ == "__main__":
    asyncio.run(main())
