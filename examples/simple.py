"""Simple: a SyncDispatcher delivers an int job and a str job at once, in memory.

Prints:
    100
    Job
"""

from __future__ import annotations

import asyncio

import corequeue as cq


async def show(job: cq.Job) -> None:
    print(job.data)


async def main() -> None:
    dispatcher = cq.SyncDispatcher()
    dispatcher.subscribe(cq.listen(cq.job_from(0), show))  # int jobs
    dispatcher.subscribe(cq.listen(cq.job_from(""), show))  # str jobs

    await dispatcher.dispatch(cq.job_from(100))
    await dispatcher.dispatch(cq.job_from("Job"))


if __name__ == "__main__":
    asyncio.run(main())
