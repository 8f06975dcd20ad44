"""Contract-suite factories for the drivers that need no server: in-process and SQLite."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from corequeue.drivers.base import Driver
from corequeue.drivers.in_process import InProcessDriver
from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.testing import FakeClock
from tests.support.drivers import POP_TIMEOUT, AsyncDriverIterator, DriverFactory


@asynccontextmanager
async def in_process(clock: FakeClock, tmp_path: Path) -> AsyncDriverIterator:
    driver = InProcessDriver(POP_TIMEOUT, clock=clock)
    yield driver
    await driver.close()


@asynccontextmanager
async def sqlite(clock: FakeClock, tmp_path: Path) -> AsyncDriverIterator:
    driver: Driver = SQLiteDriver(tmp_path / "jobs.db", pop_timeout=POP_TIMEOUT, clock=clock)
    yield driver
    await driver.close()


FACTORIES: dict[str, DriverFactory] = {"in_process": in_process, "sqlite": sqlite}
