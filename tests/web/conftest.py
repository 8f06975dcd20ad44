"""Fixtures of the dashboard tests: a real SQLite queue, the app over it, and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.queue import Queue
from corequeue.web import create_app
from tests.web.support import client_of


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[Queue]:
    queue = Queue(SQLiteDriver(tmp_path / "jobs.db"), name="default")
    yield queue
    await queue.close()


@pytest.fixture
async def client(queue: Queue) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(create_app({"default": queue})) as client:
        yield client
