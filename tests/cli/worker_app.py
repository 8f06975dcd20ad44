"""The listeners the worker tests run: `--app tests.cli.worker_app:setup`.

Each job appends `<queue> <text>` to the ledger file named by $COREQUEUE_TEST_LEDGER. A job
whose `fail_while` names a file fails while that file exists, so a test decides when it heals.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import corequeue as cq
from corequeue.factory import QueueFactory

LEDGER_VARIABLE = "COREQUEUE_TEST_LEDGER"


@dataclass
class Greeting:
    text: str
    fail_while: str = ""


def setup(factory: QueueFactory) -> None:
    """Subscribe the greeting listener to every configured queue."""
    ledger = Path(os.environ[LEDGER_VARIABLE])
    for name in factory.names:
        factory.make(name).subscribe(cq.listen(Greeting, _greeter(ledger, name)))


def _greeter(ledger: Path, queue: str) -> Callable[[cq.Job], None]:
    def greet(job: cq.Job) -> None:  # a plain function: the worker runs it in a thread
        greeting: Greeting = job.data
        if greeting.fail_while and Path(greeting.fail_while).exists():
            raise RuntimeError(f"{greeting.fail_while} still exists")
        with ledger.open("a") as file:
            file.write(f"{queue} {greeting.text}\n")

    return greet
