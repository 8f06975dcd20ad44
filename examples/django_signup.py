"""Django: a view that saves an order and enqueues its receipt in the same transaction.

Needs `pip install 'corequeue[django,postgres]'`. In settings.py:

    INSTALLED_APPS = [..., "corequeue.contrib.django"]
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", ...}}
    COREQUEUE = {
        "queue": {"default": {"driver": "postgres", "dsn": "postgresql://app@db/shop"}},
    }

Put the listener in the `jobs` module of an installed app (`shop/jobs.py`), where
`manage.py corequeue_worker` finds it, and the view in `shop/views.py`. The queue keeps its jobs
in Django's own database, so the job is a row of the view's transaction: it exists exactly when
the order does. With another store (SQLite, Redis) it is dispatched when the transaction
commits, and not at all on a rollback.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest, JsonResponse

import corequeue as cq
from corequeue.contrib.django import dispatch_on_commit, get_queue


@dataclass
class SendReceipt:
    order_id: int


# shop/jobs.py
@get_queue().listener(SendReceipt)
def send_receipt(job: cq.ReceivedJob) -> None:
    print(f"receipt for order {job.data.order_id}")


# shop/views.py
@transaction.atomic
def place_order(request: HttpRequest) -> JsonResponse:
    order_id = save_order(request)  # an Order.objects.create(...) in a real app
    job_id = dispatch_on_commit(get_queue(), SendReceipt(order_id))
    return JsonResponse({"order": order_id, "receipt_job": job_id})


def save_order(request: HttpRequest) -> int:
    return 1
