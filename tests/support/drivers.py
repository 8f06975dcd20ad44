"""Every driver the contract suite runs against, each as a factory of fresh, empty drivers.

A driver joins the suite by adding a module `tests/support/driver_<name>.py` that exposes
`FACTORIES: dict[str, DriverFactory]`; the conftest collects them all. A factory passes its
module's `POP_TIMEOUT` (this module's, imported) to the driver it builds.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from corequeue.drivers.base import Driver
from corequeue.testing import FakeClock

POP_TIMEOUT = timedelta(milliseconds=100)
"""Short pop timeout for contract tests, so an empty pop costs little."""

DriverFactory = Callable[[FakeClock, Path], AbstractAsyncContextManager[Driver]]
"""Builds a driver on an empty store, using `clock` and a scratch folder; closes it after."""

AsyncDriverIterator = AsyncIterator[Driver]


def all_factories(pop_timeout: timedelta | None = None) -> dict[str, DriverFactory]:
    """Return the factories of every driver module under tests/support, by driver name.

    Args:
        pop_timeout: When given, the drivers built wait this long in an empty pop instead of
            POP_TIMEOUT. Zero suits tests whose clock only moves by hand: a pop always looks
            once before it waits, and nothing falls due while it waits.
    """
    import tests.support as support

    factories: dict[str, DriverFactory] = {}
    for module in pkgutil.iter_modules(support.__path__):
        if module.name.startswith("driver_"):
            loaded = importlib.import_module(f"tests.support.{module.name}")
            for name, factory in loaded.FACTORIES.items():
                if pop_timeout is not None:
                    factory = _with_pop_timeout(factory, loaded, pop_timeout)
                factories[name] = factory
    return factories


def _with_pop_timeout(
    factory: DriverFactory, module: ModuleType, pop_timeout: timedelta
) -> DriverFactory:
    """Return `factory` building its drivers with `pop_timeout`."""

    @asynccontextmanager
    async def build(clock: FakeClock, tmp_path: Path) -> AsyncDriverIterator:
        async with AsyncExitStack() as stack:
            with _module_pop_timeout(module, pop_timeout):  # the driver is built on entering
                driver = await stack.enter_async_context(factory(clock, tmp_path))
            if driver.pop_timeout != pop_timeout:
                raise AssertionError(f"{module.__name__} ignores its POP_TIMEOUT")
            yield driver

    return build


@contextmanager
def _module_pop_timeout(module: ModuleType, pop_timeout: timedelta) -> Iterator[None]:
    names = vars(module)
    saved, names["POP_TIMEOUT"] = names["POP_TIMEOUT"], pop_timeout
    try:
        yield
    finally:
        names["POP_TIMEOUT"] = saved
