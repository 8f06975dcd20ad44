"""The `driver` fixture: a fresh, empty driver of every kind the suite knows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corequeue.drivers.base import Driver
from corequeue.testing import FakeClock
from tests.support.drivers import all_factories

FACTORIES = all_factories()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(FACTORIES))
async def driver(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Driver]:
    async with FACTORIES[request.param](clock, tmp_path) as fresh:
        yield fresh
