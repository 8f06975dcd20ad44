"""What only the PostgreSQL driver has: migrations, schemas, transactional enqueue, NOTIFY.

The shared behaviour is in test_contract.py; these tests run against the same real server.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from corequeue.drivers.base import LEASE_EXPIRED, Channel, InspectDriver, QueueInfo
from corequeue.drivers.postgres import PostgresDriver, migrations
from corequeue.drivers.postgres.migrations import latest_version
from corequeue.errors import DriverError, InvalidOption, QueueEmpty, StoreUnavailable
from corequeue.job import PersistedJob
from corequeue.testing import FakeClock
from tests.support.driver_postgres import (
    fetch_one,
    fresh_schema,
    insert_version_1_row,
    postgres_dsn,
    restart_postgres,
    server_now_ms,
    unique_queue_name,
    wait_until_connections,
    wait_until_listening,
    with_application_name,
)
from tests.support.drivers import POP_TIMEOUT
from tests.support.jobs import persisted

LONG = timedelta(seconds=60)
"""A pop timeout and poll interval no test waits out: only a notification can end the wait."""

GUARD_SECONDS = 20.0
"""How long a test waits for something that should take milliseconds, before failing."""


@pytest.fixture
def dsn() -> str:
    return postgres_dsn()


@pytest.fixture
async def schema(dsn: str) -> AsyncIterator[str]:
    async with fresh_schema(dsn) as name:
        yield name


@pytest.fixture
async def driver(dsn: str, schema: str) -> AsyncIterator[PostgresDriver]:
    driver = PostgresDriver(dsn, name="jobs", schema=schema, pop_timeout=POP_TIMEOUT)
    yield driver
    await driver.close()


async def applied_versions(dsn: str, schema: str) -> list[int]:
    (versions,) = await fetch_one(
        dsn, f'SELECT array_agg(version ORDER BY version) FROM "{schema}".schema_version'
    )
    return list(versions)


# --- migrations -------------------------------------------------------------------------


async def test_migrate_creates_the_schema_and_records_its_version(
    driver: PostgresDriver, dsn: str, schema: str
) -> None:
    assert await driver.migrate() == list(range(1, latest_version() + 1))

    assert await applied_versions(dsn, schema) == list(range(1, latest_version() + 1))


async def test_migrate_twice_applies_nothing_the_second_time(
    driver: PostgresDriver, dsn: str, schema: str
) -> None:
    await driver.migrate()

    assert await driver.migrate() == []
    assert await applied_versions(dsn, schema) == list(range(1, latest_version() + 1))


async def test_concurrent_migrations_apply_each_version_once(dsn: str, schema: str) -> None:
    drivers = [PostgresDriver(dsn, name=f"w{n}", schema=schema) for n in range(8)]

    results = await asyncio.gather(*(driver.migrate() for driver in drivers))

    assert sorted(results) == [[]] * 7 + [list(range(1, latest_version() + 1))]
    assert await applied_versions(dsn, schema) == list(range(1, latest_version() + 1))
    for driver in drivers:
        await driver.close()


async def test_first_use_migrates(driver: PostgresDriver, dsn: str, schema: str) -> None:
    await driver.push(persisted("a"), timedelta(0))

    assert await applied_versions(dsn, schema) == list(range(1, latest_version() + 1))
    assert (await driver.pop()).id == "a"


async def test_a_schema_newer_than_this_release_is_refused(
    driver: PostgresDriver, dsn: str, schema: str
) -> None:
    await driver.migrate()
    await fetch_one(
        dsn,
        f"INSERT INTO \"{schema}\".schema_version (version, name) VALUES (%s, 'future') "
        "RETURNING version",
        latest_version() + 1,
    )
    newer = PostgresDriver(dsn, schema=schema)

    with pytest.raises(DriverError, match="newer than this release"):
        await newer.migrate()


async def test_migration_to_version_2_keeps_the_jobs_of_a_version_1_schema(
    dsn: str, schema: str
) -> None:
    clock = FakeClock()
    now = clock.now_ms()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        assert await migrations.migrate(connection, schema, target=1) == [1]
        for job_id, state, due_ms in [
            ("waiting", 0, now),
            ("delayed", 0, now + 60_000),
            ("reserved", 1, now + 30_000),  # a worker of the old release holds it
            ("failed", 2, now),
        ]:
            await insert_version_1_row(connection, schema, job_id, state, due_ms)
    driver = PostgresDriver(
        dsn, name="jobs", schema=schema, pop_timeout=POP_TIMEOUT, lease=LONG, clock=clock
    )

    assert await driver.migrate() == list(range(2, migrations.latest_version() + 1))

    assert await driver.info() == QueueInfo(waiting=1, delayed=1, reserved=1, failed=1)
    waiting = await driver.pop()
    assert (waiting.id, waiting.value, waiting.attempts) == ("waiting", b"v1 waiting", 1)
    assert await driver.ack(waiting)
    assert await driver.reload("failed") == 1
    assert (await driver.pop()).id == "failed"
    await driver.close()


async def test_migration_to_version_6_keeps_the_jobs_and_allows_completed_ones(
    dsn: str, schema: str
) -> None:
    clock = FakeClock()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await migrations.migrate(connection, schema, target=1)
        await insert_version_1_row(connection, schema, "waiting", 0, clock.now_ms())
        assert await migrations.migrate(connection, schema, target=3) == [2, 3]
    driver = PostgresDriver(dsn, name="jobs", schema=schema, pop_timeout=POP_TIMEOUT, clock=clock)

    assert await driver.migrate() == list(range(4, latest_version() + 1))

    job = await driver.pop()
    job.keep_result, job.result = timedelta(minutes=1), b"7"
    assert await driver.ack(job)
    view = await driver.get_job("waiting")
    assert view is not None
    assert (view.channel, view.job.result) == (Channel.COMPLETED, b"7")
    await driver.close()


async def test_migration_to_version_3_adds_periodic_slots_and_keeps_the_jobs(
    dsn: str, schema: str
) -> None:
    clock = FakeClock()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await migrations.migrate(connection, schema, target=1)
        await insert_version_1_row(connection, schema, "waiting", 0, clock.now_ms())
        assert await migrations.migrate(connection, schema, target=2) == [2]
    driver = PostgresDriver(dsn, name="jobs", schema=schema, pop_timeout=POP_TIMEOUT, clock=clock)

    assert await driver.migrate() == list(range(3, migrations.latest_version() + 1))

    assert await driver.enqueue_slot("s", clock.now_ms(), persisted("periodic:s:1"))
    assert await driver.info() == QueueInfo(waiting=2)
    assert await fetch_one(dsn, f'SELECT name, last_slot_ms FROM "{schema}".periodic') == (
        "s",
        clock.now_ms(),
    )
    await driver.close()


async def test_a_push_that_fails_leaves_the_slot_where_it_was(
    driver: PostgresDriver, dsn: str, schema: str
) -> None:
    await driver.migrate()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await connection.execute(
            f'CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql '
            "AS $$ BEGIN RAISE EXCEPTION 'no insert today'; END $$"
        )
        await connection.execute(
            f'CREATE TRIGGER refuse BEFORE INSERT ON "{schema}".jobs '
            f'FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse()'
        )

        with pytest.raises(StoreUnavailable, match="no insert today"):
            await driver.enqueue_slot("s", 1_000, persisted("periodic:s:1000"))

        assert await driver.schedule_slots() == {}
        await connection.execute(f'DROP TRIGGER refuse ON "{schema}".jobs')
    assert await driver.enqueue_slot("s", 1_000, persisted("periodic:s:1000"))


async def test_queues_of_one_schema_keep_their_own_slots(dsn: str, schema: str) -> None:
    emails = PostgresDriver(dsn, name="emails", schema=schema, pop_timeout=POP_TIMEOUT)
    reports = PostgresDriver(dsn, name="reports", schema=schema, pop_timeout=POP_TIMEOUT)

    assert await emails.enqueue_slot("s", 1_000, persisted("periodic:s:1000"))
    assert await reports.enqueue_slot("s", 1_000, persisted("periodic:s:1000"))

    assert await reports.forget_schedule("s")
    assert await emails.schedule_slots() == {"s": 1_000}
    await emails.close()
    await reports.close()


async def test_a_reservation_from_before_the_migration_comes_back_when_its_lease_runs_out(
    dsn: str, schema: str
) -> None:
    clock = FakeClock()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await migrations.migrate(connection, schema, target=1)
        await insert_version_1_row(connection, schema, "r", 1, clock.now_ms() + 30_000)
    driver = PostgresDriver(dsn, name="jobs", schema=schema, pop_timeout=POP_TIMEOUT, clock=clock)
    untokened = PersistedJob("r", "tests.Job", b"v1 r")  # what its old holder has: no token

    assert not await driver.ack(untokened)
    assert not await driver.renew(untokened)
    assert await driver.info() == QueueInfo(reserved=1)
    clock.advance(timedelta(seconds=30))
    recovered = await driver.pop()
    assert (recovered.id, recovered.attempts, recovered.last_error) == ("r", 2, LEASE_EXPIRED)
    assert await driver.ack(recovered)
    await driver.close()


async def test_a_token_left_on_a_pending_row_settles_nothing(
    driver: PostgresDriver, dsn: str, schema: str
) -> None:
    # As a worker of the previous release leaves it: recovered to pending, its token kept.
    await driver.push(persisted("a"), timedelta(0))
    await fetch_one(dsn, f"UPDATE \"{schema}\".jobs SET token = 'left' WHERE id = 'a' RETURNING id")

    assert not await driver.ack(persisted("a", token="left"))
    popped = await driver.pop()

    assert popped.token != "left"
    assert await driver.ack(popped)
    assert await driver.info() == QueueInfo()


async def test_migrate_refuses_a_target_this_release_does_not_have(dsn: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        with pytest.raises(InvalidOption, match="target"):
            await migrations.migrate(connection, schema, target=latest_version() + 1)


# --- pop plans --------------------------------------------------------------------------


async def test_pops_keep_their_plan_when_statistics_predate_the_due_jobs(
    driver: PostgresDriver, schema: str
) -> None:
    delayed = [(persisted(f"d{n}"), timedelta(days=1)) for n in range(3000)]
    for start in range(0, len(delayed), 1000):
        await driver.push_many(delayed[start : start + 1000])
    async with driver._connection() as connection:  # statistics of delayed jobs only
        await connection.execute(f'ANALYZE "{schema}".jobs')
    await driver.push_many([(persisted(f"w{n}"), timedelta(0)) for n in range(3000)])
    params = driver._params(limit=100, lease_ms=30_000, lease_expired="x", token="plan")

    async with driver._connection() as connection:  # EXPLAIN plans only: nothing runs
        explained = await connection.execute(b"EXPLAIN " + driver._queries.reserve, params)
        plan = "\n".join(row[0] for row in await explained.fetchall())

    assert "jobs_ready" in plan  # read in pop order, stopping after `limit` rows ...
    assert "Sort" not in plan  # ... not every due row read and then sorted
    assert [job.id for job in await driver.pop_many(3)] == ["w0", "w1", "w2"]


# --- schemas and queue names ------------------------------------------------------------


@pytest.mark.parametrize("schema_name", ["", "1abc", 'x"; DROP TABLE jobs; --', "a-b", "a" * 51])
def test_a_schema_that_is_not_a_plain_identifier_is_refused(dsn: str, schema_name: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresDriver(dsn, schema=schema_name)


async def test_schemas_keep_queues_of_the_same_name_apart(dsn: str) -> None:
    async with fresh_schema(dsn) as first, fresh_schema(dsn) as second:
        one = PostgresDriver(dsn, name="jobs", schema=first, pop_timeout=POP_TIMEOUT)
        two = PostgresDriver(dsn, name="jobs", schema=second, pop_timeout=POP_TIMEOUT)

        await one.push(persisted("a"), timedelta(0))

        assert await one.info() == QueueInfo(waiting=1)
        assert await two.info() == QueueInfo()
        await one.close()
        await two.close()


async def test_queues_of_one_schema_share_its_table_and_stay_apart(dsn: str, schema: str) -> None:
    emails = PostgresDriver(dsn, name="emails", schema=schema, pop_timeout=POP_TIMEOUT)
    reports = PostgresDriver(dsn, name="reports", schema=schema, pop_timeout=POP_TIMEOUT)
    await emails.push(persisted("same-id"), timedelta(0))
    await reports.push(persisted("same-id", value=b"report"), timedelta(0))

    await emails.flush("waiting")

    assert await emails.info() == QueueInfo()
    assert (await reports.pop()).value == b"report"
    (rows,) = await fetch_one(dsn, f'SELECT count(*) FROM "{schema}".jobs')
    assert rows == 1
    await emails.close()
    await reports.close()


# --- transactional enqueue --------------------------------------------------------------


async def test_push_in_a_rolled_back_transaction_leaves_no_job(
    driver: PostgresDriver, dsn: str
) -> None:
    async with (
        await psycopg.AsyncConnection.connect(dsn) as connection,
        connection.transaction(force_rollback=True),
    ):
        await driver.push(persisted("a"), timedelta(0), connection=connection)
        assert await driver.info() == QueueInfo()  # not visible before commit

    assert await driver.info() == QueueInfo()
    with pytest.raises(QueueEmpty):
        await driver.pop()


async def test_push_in_a_committed_transaction_makes_the_job_visible(
    driver: PostgresDriver, dsn: str
) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as connection, connection.transaction():
        await driver.push(persisted("a"), timedelta(0), connection=connection)
        await connection.execute("SELECT 1")  # the caller's own work, same transaction

    assert await driver.info() == QueueInfo(waiting=1)
    assert (await driver.pop()).id == "a"


async def test_push_joins_the_transaction_of_a_sync_connection(
    driver: PostgresDriver, dsn: str
) -> None:
    with psycopg.connect(dsn) as connection:
        await driver.push(persisted("kept"), timedelta(0), connection=connection)
        connection.commit()
        await driver.push(persisted("dropped"), timedelta(0), connection=connection)
        connection.rollback()

    assert await driver.info() == QueueInfo(waiting=1)
    assert (await driver.pop()).id == "kept"


async def test_commit_of_a_transactional_push_wakes_a_blocked_pop(dsn: str, schema: str) -> None:
    application_name = f"cq-test-{uuid.uuid4().hex[:8]}"
    popper = PostgresDriver(
        with_application_name(dsn, application_name),
        schema=schema,
        pop_timeout=LONG,
        poll_interval=LONG,
    )
    popping = asyncio.create_task(popper.pop())
    await wait_until_listening(dsn, application_name, GUARD_SECONDS)

    async with await psycopg.AsyncConnection.connect(dsn) as connection, connection.transaction():
        await popper.push(persisted("a"), timedelta(0), connection=connection)

    job = await asyncio.wait_for(popping, GUARD_SECONDS)
    assert job.id == "a"
    await popper.close()


async def test_a_push_from_another_process_wakes_a_blocked_pop(dsn: str, schema: str) -> None:
    application_name = f"cq-test-{uuid.uuid4().hex[:8]}"
    name = unique_queue_name()
    popper = PostgresDriver(
        with_application_name(dsn, application_name),
        name=name,
        schema=schema,
        pop_timeout=LONG,
        poll_interval=LONG,
    )
    pusher = PostgresDriver(dsn, name=name, schema=schema)  # shares nothing with popper
    popping = asyncio.create_task(popper.pop_many(10))
    await wait_until_listening(dsn, application_name, GUARD_SECONDS)

    await pusher.push(persisted("a"), timedelta(0))

    jobs = await asyncio.wait_for(popping, GUARD_SECONDS)
    assert [job.id for job in jobs] == ["a"]
    await popper.close()
    await pusher.close()


# --- event loops ------------------------------------------------------------------------


async def test_one_driver_serves_two_event_loops_and_closes_both(dsn: str, schema: str) -> None:
    application_name = f"cq-test-{uuid.uuid4().hex[:8]}"
    driver = PostgresDriver(with_application_name(dsn, application_name), schema=schema)
    helper = asyncio.new_event_loop()  # as Queue.dispatch_sync runs pushes on its own loop
    thread = threading.Thread(target=helper.run_forever, daemon=True)
    thread.start()
    try:
        pushing = asyncio.run_coroutine_threadsafe(
            driver.push(persisted("from-helper"), timedelta(0)), helper
        )
        await asyncio.wrap_future(pushing)

        assert (await driver.pop()).id == "from-helper"
        await driver.close()

        await wait_until_connections(dsn, application_name, 0, GUARD_SECONDS)
    finally:
        helper.call_soon_threadsafe(helper.stop)
        await asyncio.to_thread(thread.join)
        helper.close()


# --- the server's clock -----------------------------------------------------------------


async def test_without_a_clock_due_times_come_from_the_server_clock(dsn: str, schema: str) -> None:
    driver = PostgresDriver(dsn, schema=schema, pop_timeout=LONG, poll_interval=LONG)
    before_us = await server_now_us(dsn)

    await driver.push(persisted("a"), timedelta(milliseconds=300))

    (due_ms,) = await fetch_one(dsn, f'SELECT due_ms FROM "{schema}".jobs WHERE id = %s', "a")
    # Rounded up from the server's microseconds: never before dispatch + delay, < 1 ms after.
    assert before_us + 300_000 <= due_ms * 1000 < await server_now_us(dsn) + 301_000
    assert await driver.info() == QueueInfo(delayed=1)
    # An idle pop sleeps until the job is due, by the server's clock: not a moment earlier.
    job = await asyncio.wait_for(driver.pop(), GUARD_SECONDS)
    assert job.id == "a"
    assert await server_now_ms(dsn) >= due_ms
    await driver.close()


async def test_due_times_are_rounded_up_from_the_clock_microseconds(dsn: str, schema: str) -> None:
    clock = FakeClock(datetime(2030, 1, 1, 0, 0, 0, 999, tzinfo=UTC))  # 999 µs past a ms
    driver = PostgresDriver(dsn, schema=schema, pop_timeout=POP_TIMEOUT, clock=clock)

    await driver.push(persisted("soon"), timedelta(milliseconds=1))
    await driver.push(persisted("now"), timedelta(0))

    delayed = await driver.list_jobs(Channel.DELAYED)
    assert [(view.job.id, view.due_at) for view in delayed] == [
        ("soon", datetime(2030, 1, 1, 0, 0, 0, 2000, tzinfo=UTC))
    ]
    assert [view.job.id for view in await driver.list_jobs(Channel.WAITING)] == ["now"]
    await driver.close()


async def server_now_us(dsn: str) -> int:
    """Return the database server's clock in microseconds since the Unix epoch."""
    query = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
    (now,) = await fetch_one(dsn, query)
    return int(now)


# --- options and failures ---------------------------------------------------------------


async def test_pop_many_refuses_a_limit_below_one(driver: PostgresDriver) -> None:
    with pytest.raises(ValueError, match="limit"):
        await driver.pop_many(0)


async def test_push_many_keeps_the_first_of_repeated_ids(driver: PostgresDriver) -> None:
    await driver.push_many(
        [(persisted("a", value=b"1"), timedelta(0)), (persisted("a", value=b"2"), timedelta(0))]
    )

    assert await driver.info() == QueueInfo(waiting=1)
    assert (await driver.pop()).value == b"1"


async def test_a_transactional_push_needs_a_psycopg_connection(driver: PostgresDriver) -> None:
    with pytest.raises(ValueError, match="psycopg"):
        await driver.push(persisted("a"), timedelta(0), connection=object())


async def test_push_refuses_options_other_than_connection_by_name(
    driver: PostgresDriver, dsn: str
) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        with pytest.raises(InvalidOption, match="colour"):
            await driver.push(persisted("a"), timedelta(0), connection=connection, colour="red")

    assert await driver.info() == QueueInfo()


def test_the_driver_is_an_inspect_driver(dsn: str) -> None:
    driver: InspectDriver = PostgresDriver(dsn)  # mypy checks the Protocol here

    assert isinstance(driver, InspectDriver)


def closed_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_server_raises_store_unavailable_without_the_password() -> None:
    port = closed_port()
    driver = PostgresDriver(
        f"postgresql://app:secret-word@127.0.0.1:{port}/app",
        pop_timeout=POP_TIMEOUT,
        pool_timeout=timedelta(seconds=1),
    )

    for operation in (driver.push(persisted("a"), timedelta(0)), driver.pop(), driver.info()):
        with pytest.raises(StoreUnavailable) as raised:
            await operation
        assert "secret-word" not in str(raised.value)
        assert f"127.0.0.1:{port}/app" in str(raised.value)  # the store, named
    await driver.close()


@pytest.mark.chaos
async def test_the_driver_reconnects_after_a_server_restart(
    driver: PostgresDriver,
) -> None:
    await driver.push(persisted("before"), timedelta(0))
    await driver.info()  # the pool holds a connection the restart will break

    await restart_postgres()

    await driver.push(persisted("after"), timedelta(0))
    popped = [(await driver.pop()).id, (await driver.pop()).id]
    assert sorted(popped) == ["after", "before"]


@pytest.mark.chaos
async def test_a_blocked_pop_still_wakes_on_push_after_a_server_restart(
    dsn: str, schema: str
) -> None:
    application_name = f"cq-test-{uuid.uuid4().hex[:8]}"
    popper = PostgresDriver(
        with_application_name(dsn, application_name),
        schema=schema,
        pop_timeout=LONG,
        poll_interval=LONG,
    )
    pusher = PostgresDriver(dsn, schema=schema)
    popping = asyncio.create_task(popper.pop())
    await wait_until_listening(dsn, application_name, GUARD_SECONDS)

    await restart_postgres()
    await wait_until_listening(dsn, application_name, GUARD_SECONDS)  # it listens again
    await pusher.push(persisted("a"), timedelta(0))

    assert (await asyncio.wait_for(popping, GUARD_SECONDS)).id == "a"
    await popper.close()
    await pusher.close()


async def test_migration_to_version_5_adds_flow_control_and_keeps_the_jobs(
    dsn: str, schema: str
) -> None:
    clock = FakeClock()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await migrations.migrate(connection, schema, target=1)
        await insert_version_1_row(connection, schema, "old", 0, clock.now_ms())
        assert await migrations.migrate(connection, schema, target=3) == [2, 3]
    driver = PostgresDriver(dsn, name="jobs", schema=schema, pop_timeout=POP_TIMEOUT, clock=clock)

    assert await driver.migrate() == list(range(4, migrations.latest_version() + 1))

    await driver.push(persisted("urgent", priority=9, group="acme"), timedelta(0))
    first, second = await driver.pop(), await driver.pop()
    assert (first.id, first.priority, first.group) == ("urgent", 9, "acme")
    assert (second.id, second.priority, second.group) == ("old", 0, None)
    await driver.close()
