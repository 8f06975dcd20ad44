"""Every kind of `--app` target the worker accepts, built at import like a user's module would.

The configuration comes from the working directory (the test project's `corequeue.yaml`);
listeners are those of `worker_app`, subscribed to every configured queue.
"""

from __future__ import annotations

from corequeue.config import load_config
from corequeue.factory import App, QueueFactory
from tests.cli.worker_app import setup

factory = QueueFactory(load_config())
setup(factory)

app = App(factory)

queue = factory.make(factory.config.names[0])


async def setup_async(given: QueueFactory) -> None:
    """An async callable: the worker awaits it with the factory built from the configuration."""
    setup(given)


not_a_target = "a string"
