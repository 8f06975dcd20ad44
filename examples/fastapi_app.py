"""FastAPI: the app owns its queues, endpoints get them with Depends, the dashboard is mounted.

Needs `pip install 'corequeue[fastapi,web]' uvicorn`. Run the app, then a worker:

    uvicorn examples.fastapi_app:app
    corequeue worker --app examples.fastapi_app:factory

(or pass `consume=["emails"]` to Queues to run the consumer inside the web process).
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI

import corequeue as cq
from corequeue.config import parse_config
from corequeue.contrib.fastapi import Queues

# No `from __future__ import annotations` here: FastAPI reads the endpoint's annotations.


@dataclass
class SendWelcome:
    email: str


factory = cq.QueueFactory(
    parse_config({"queue": {"emails": {"driver": "sqlite", "path": "emails.db"}}})
)


@factory.make("emails").listener(SendWelcome)
async def send_welcome(job: cq.ReceivedJob) -> None:
    print(f"welcome, {job.data.email}")


queues = Queues(factory)
app = FastAPI(lifespan=queues.lifespan)
app.mount("/queues", queues.dashboard())


@app.post("/signup/{email}")
async def signup(
    email: str, emails: Annotated[cq.Queue, Depends(queues.queue("emails"))]
) -> dict[str, str]:
    """Sign a user up; the welcome email goes out from a worker."""
    return {"job": await emails.dispatch(SendWelcome(email))}
