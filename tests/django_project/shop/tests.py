"""dispatch_on_commit under Django's test runner: the job exists exactly when the transaction
commits, on SQLite (dispatched after the commit) and on PostgreSQL (inserted inside it).

Run by tests/contrib/test_django.py: `python -m tests.django_project.manage test
tests.django_project.shop`, with COREQUEUE_DJANGO_DATABASE set to `sqlite` or `postgres`.
"""

from __future__ import annotations

import asyncio
import unittest
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import TransactionTestCase, override_settings
from psycopg import conninfo

import corequeue as cq
from corequeue.contrib.django import dispatch_on_commit, get_factory, get_queue
from corequeue.drivers.base import Channel
from tests.django_project.shop.models import Order
from tests.django_project.shop.payloads import SendReceipt

ON_POSTGRES = connection.vendor == "postgresql"


class Boom(Exception):
    pass


class DispatchOnCommitTests(TransactionTestCase):
    def setUp(self) -> None:
        if ON_POSTGRES:  # the queue lives in the database the test runner created
            self.enterContext(override_settings(COREQUEUE=_same_database_config()))
        self.runner = asyncio.Runner()
        self.queue = get_queue()
        for channel in (Channel.WAITING, Channel.DELAYED, Channel.FAILED):
            self.runner.run(self.queue.driver.flush(channel))

    def tearDown(self) -> None:
        self.runner.run(get_factory().close())
        self.runner.close()

    def waiting(self) -> int:
        return self.runner.run(self.queue.info()).waiting

    def popped(self) -> cq.PersistedJob:
        job = self.runner.run(self.queue.driver.pop())
        self.runner.run(self.queue.driver.ack(job))
        return job

    @transaction.atomic
    def order_then_fail(self) -> None:
        order = Order.objects.create(email="ada@example.com")
        dispatch_on_commit(self.queue, SendReceipt(order.id))
        raise Boom

    def test_a_rollback_leaves_no_job(self) -> None:
        with pytest.raises(Boom):
            self.order_then_fail()

        assert self.waiting() == 0
        assert Order.objects.count() == 0

    def test_a_commit_leaves_one_job_no_worker_sees_before(self) -> None:
        with transaction.atomic():
            order = Order.objects.create(email="ada@example.com")
            job_id = dispatch_on_commit(self.queue, SendReceipt(order.id))
            assert self.waiting() == 0

        assert self.waiting() == 1
        job = self.popped()
        assert (job.id, job.type) == (job_id, cq.job_from(SendReceipt(1)).type)
        assert job.value == f'{{"order_id":{order.id}}}'.encode()

    def test_a_savepoint_rolled_back_drops_only_its_own_job(self) -> None:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    dispatch_on_commit(self.queue, SendReceipt(1))
                    raise Boom
            except Boom:
                pass
            kept = dispatch_on_commit(self.queue, SendReceipt(2))

        assert self.waiting() == 1
        assert self.popped().id == kept

    def test_outside_a_transaction_the_job_is_dispatched_at_once(self) -> None:
        dispatch_on_commit(self.queue, SendReceipt(1))

        assert self.waiting() == 1

    @unittest.skipUnless(ON_POSTGRES, "joins a PostgreSQL transaction")
    def test_on_postgres_the_job_is_a_row_of_the_transaction_itself(self) -> None:
        with transaction.atomic():
            dispatch_on_commit(self.queue, SendReceipt(1), join=True)
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM corequeue.jobs WHERE queue = 'default'")
                row = cursor.fetchone()
            assert row == (1,)  # seen by this transaction, by no other
            assert self.waiting() == 0

        assert self.waiting() == 1

    @unittest.skipIf(ON_POSTGRES, "a SQLite queue cannot join Django's transaction")
    def test_join_true_is_refused_when_the_store_is_elsewhere(self) -> None:
        with pytest.raises(cq.InvalidOption), transaction.atomic():
            dispatch_on_commit(self.queue, SendReceipt(1), join=True)

        assert self.waiting() == 0


def _same_database_config() -> dict[str, Any]:
    given = connection.settings_dict
    dsn = conninfo.make_conninfo(
        dbname=given["NAME"],
        user=given["USER"] or None,
        password=given["PASSWORD"] or None,
        host=given["HOST"] or None,
        port=given["PORT"] or None,
    )
    return {"queue": {"default": {"driver": "postgres", "dsn": dsn}}}
