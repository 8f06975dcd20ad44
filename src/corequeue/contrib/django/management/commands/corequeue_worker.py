"""`manage.py corequeue_worker`: consume the queues of `settings.COREQUEUE`."""

from __future__ import annotations

import asyncio
import importlib
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import autodiscover_modules

from corequeue.contrib.django import get_factory
from corequeue.errors import CoreQueueError
from corequeue.factory import App


class Command(BaseCommand):
    """Run the consumers of the configured queues until SIGTERM or SIGINT, then stop gracefully.

    Listeners are found by importing the `jobs` module of every installed app, and the modules
    named by `settings.COREQUEUE_JOB_MODULES`; they subscribe to `get_queue(...)`.
    """

    help = "Consume the queues of settings.COREQUEUE (every configured queue unless -q is given)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "-q",
            "--queue",
            action="append",
            dest="queues",
            metavar="QUEUE",
            help="a queue to consume (repeat for several; default: every configured queue)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        autodiscover_modules("jobs")
        for module in getattr(settings, "COREQUEUE_JOB_MODULES", ()):
            importlib.import_module(module)
        factory = get_factory()
        queues = options.get("queues")
        try:
            app = App(factory, queues=queues)
            names = ", ".join(queue.name for queue in app.queues)
            self.stdout.write(f"corequeue worker: consuming {names}")
            self.stdout.flush()
            asyncio.run(app.run())
        except CoreQueueError as exc:
            raise CommandError(str(exc)) from exc
