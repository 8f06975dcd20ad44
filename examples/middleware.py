"""Middleware: a request id set at dispatch travels with the job to its listener.

Prints:
    dispatching builtins.str to default
    attempt 1 of request r-42
    hello
"""

from __future__ import annotations

import asyncio
import contextvars
from datetime import timedelta
from typing import Any

import corequeue as cq
from corequeue.middleware import CallNext

REQUEST_ID = contextvars.ContextVar("request_id", default="none")


class RequestIds(cq.Middleware):
    """Copies the caller's request id into every job, and back around its listeners."""

    async def on_dispatch(self, job: cq.DispatchedJob, headers: dict[str, str]) -> None:
        print(f"dispatching {job.type} to {job.queue}")
        headers["request-id"] = REQUEST_ID.get()

    async def around_process(self, job: cq.ReceivedJob, call_next: CallNext) -> Any:
        token = REQUEST_ID.set(job.headers.get("request-id", "none"))
        try:
            print(f"attempt {job.attempt} of request {REQUEST_ID.get()}")
            return await call_next()
        finally:
            REQUEST_ID.reset(token)


async def main() -> None:
    queue = cq.Queue(
        cq.InProcessDriver(pop_interval=timedelta(milliseconds=50)), middleware=[RequestIds()]
    )
    done = asyncio.Event()

    @queue.listener(str)
    async def greet(job: cq.ReceivedJob) -> None:
        print(job.data)
        done.set()

    REQUEST_ID.set("r-42")  # what a web framework's middleware would do per request
    await queue.dispatch("hello")

    worker = asyncio.create_task(queue.consume(handle_signals=False))
    await done.wait()
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
