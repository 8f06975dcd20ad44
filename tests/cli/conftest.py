"""The `project` fixture: a scratch folder configuring one queue on SQLite, Redis or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cli.support import Project
from tests.support.servers import POSTGRES_DSN_VAR, REDIS_URL_VAR, server_url

SERVERS = {"redis": REDIS_URL_VAR, "postgres": POSTGRES_DSN_VAR}


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def project(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Project]:
    variable = SERVERS.get(request.param)
    fresh = Project.create(tmp_path, request.param, server_url(variable) if variable else "")
    try:
        yield fresh
    finally:
        await fresh.wipe()


@pytest.fixture
async def sqlite_project(tmp_path: Path) -> Project:
    return Project.create(tmp_path, "sqlite")
