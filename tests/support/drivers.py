"""Every driver the contract suite runs against, each as a factory of fresh, empty drivers.

A driver joins the suite by adding a module `tests/support/driver_<name>.py` that exposes
`FACTORIES: dict[str, DriverFactory]`; the conftest collects them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path

from corequeue.drivers.base import Driver
from corequeue.testing import FakeClock

POP_TIMEOUT = timedelta(milliseconds=100)
"""Short pop timeout for contract tests, so an empty pop costs little."""

DriverFactory = Callable[[FakeClock, Path], AbstractAsyncContextManager[Driver]]
"""Builds a driver on an empty store, using `clock` and a scratch folder; closes it after."""

AsyncDriverIterator = AsyncIterator[Driver]


def all_factories() -> dict[str, DriverFactory]:
    """Return the factories of every driver module under tests/support, by driver name."""
    import tests.support as support

    factories: dict[str, DriverFactory] = {}
    for module in pkgutil.iter_modules(support.__path__):
        if module.name.startswith("driver_"):
            loaded = importlib.import_module(f"tests.support.{module.name}")
            factories.update(loaded.FACTORIES)
    return factories
