"""Listeners of the test project, imported by `manage.py corequeue_worker`.

Each job run appends `done <order id>` to the file COREQUEUE_DJANGO_LEDGER.
"""

from __future__ import annotations

import os

import corequeue as cq
from corequeue.contrib.django import get_queue
from tests.django_project.shop.payloads import SendReceipt


@get_queue().listener(SendReceipt)
def send_receipt(job: cq.ReceivedJob) -> None:
    with open(os.environ["COREQUEUE_DJANGO_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(f"done {job.data.order_id}\n")
