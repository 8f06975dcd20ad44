"""A process that cancels one job: prints what `queue.cancel()` returned.

Usage: python -m tests.integration.workers.canceller KIND TARGET QUEUE JOB_ID (see
result_waiter for KIND and TARGET).
"""

from __future__ import annotations

import asyncio
import sys

import corequeue as cq
from tests.integration.workers.result_waiter import make_driver


async def main(kind: str, target: str, name: str, job_id: str) -> None:
    queue = cq.Queue(make_driver(kind, target, name))
    print(await queue.cancel(job_id), flush=True)
    await queue.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
