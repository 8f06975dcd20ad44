"""A web request that dispatches a job and waits for its result, with a timeout.

Run: python examples/results.py, then open http://127.0.0.1:8000/thumbnail?url=cat.png

The worker runs in this process for the example's sake; in production it is `corequeue worker`
on other machines, and the web process only dispatches and waits: the result comes back through
the store (here an SQLite file; Redis or PostgreSQL work the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import corequeue as cq


@dataclass
class Thumbnail:
    url: str


@dataclass
class Size:
    width: int
    height: int


queue = cq.Queue(cq.SQLiteDriver("results-example.db"), keep_results=timedelta(minutes=5))


@queue.listener(Thumbnail)
async def make_thumbnail(job: cq.ReceivedJob) -> Size:
    await job.set_progress(0.5, "resizing")
    await asyncio.sleep(0.2)  # the real work
    return Size(160, 120)


async def thumbnail(request: Request) -> JSONResponse:
    url = request.query_params.get("url", "cat.png")
    job_id = await queue.dispatch(cq.adjust(Thumbnail(url), keep_result=timedelta(minutes=5)))
    try:
        size = await queue.result(job_id, timeout=2.0, type=Size)
    except TimeoutError:  # still running: the client may ask again with the job id
        return JSONResponse({"job": job_id, "status": "pending"}, status_code=202)
    except cq.JobFailed as failed:
        return JSONResponse({"job": job_id, "error": failed.last_error}, status_code=502)
    return JSONResponse({"job": job_id, "width": size.width, "height": size.height})


async def job_result(request: Request) -> JSONResponse:
    job_id = request.path_params["job_id"]
    try:
        size = await queue.result(job_id, timeout=0, type=Size)
    except TimeoutError:
        return JSONResponse({"job": job_id, "status": "pending"}, status_code=202)
    except cq.JobNotFound:
        return JSONResponse({"job": job_id, "error": "unknown or expired"}, status_code=404)
    except cq.JobFailed as failed:
        return JSONResponse({"job": job_id, "error": failed.last_error}, status_code=502)
    return JSONResponse({"job": job_id, "width": size.width, "height": size.height})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    worker = asyncio.create_task(queue.consume(handle_signals=False))
    try:
        yield
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await queue.close()


app = Starlette(
    routes=[Route("/thumbnail", thumbnail), Route("/jobs/{job_id}", job_result)],
    lifespan=lifespan,
)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
