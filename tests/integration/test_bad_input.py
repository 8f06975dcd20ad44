"""Bad input, over every driver: each case has one documented outcome (docs/guarantees.md).

In every case the worker keeps serving other jobs and nothing is lost: a job either completes,
is retried, or is parked in `failed` with a `last_error` that says why.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from redis import exceptions as redis_errors

import corequeue as cq
from corequeue.drivers.base import Channel, Driver, QueueInfo
from tests.integration.conftest import consuming, eventually
from tests.support.tamper import tamper_with

FAST_RETRY = timedelta(milliseconds=20)
LATER = timedelta(hours=1)


@dataclass
class Invoice:
    number: int
    total: float


def make_queue(driver: Driver, **options: Any) -> cq.Queue:
    options.setdefault("backoff", lambda previous: FAST_RETRY)
    options.setdefault("parallelism", 2)
    return cq.Queue(driver, **options)


class Canary:
    """A listener for `int` jobs: proves the worker still serves other jobs."""

    def __init__(self, queue: cq.Queue) -> None:
        self.served: list[int] = []
        queue.subscribe(cq.listen(int, self.serve))

    async def serve(self, job: cq.ReceivedJob) -> None:
        self.served.append(job.data)


async def settled_as(queue: cq.Queue, expected: QueueInfo) -> bool:
    return await queue.info() == expected


async def failed_errors(queue: cq.Queue) -> dict[str, str]:
    """Reload the failed jobs and read each one's last error straight from the driver."""
    moved = await queue.driver.reload(Channel.FAILED)
    errors = {}
    for _ in range(moved):
        job = await queue.driver.pop()
        errors[job.id] = job.last_error or ""
        await queue.driver.ack(job)
    return errors


async def run_until(queue: cq.Queue, canary: Canary, expected: QueueInfo) -> None:
    """Consume until the canary job ran and the channels hold `expected`."""
    await queue.dispatch(cq.adjust(7, max_attempts=3))
    async with consuming(queue) as worker:
        await eventually(lambda: _done(queue, canary, expected))
        assert not worker.done()


async def _done(queue: cq.Queue, canary: Canary, expected: QueueInfo) -> bool:
    return bool(canary.served) and await settled_as(queue, expected)


# --- bytes in the store --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"\xff\x00garbage", b'{"number": 1, "tot', b"", b"[]"],
    ids=["corrupt", "truncated", "empty", "wrong-shape"],
)
async def test_payload_bytes_broken_in_the_store_go_to_failed_with_a_decode_error(
    driver: Driver, raw: bytes
) -> None:
    queue = make_queue(driver)
    canary = Canary(queue)
    ran: list[Any] = []
    queue.subscribe(cq.listen(Invoice, ran.append))
    job_id = await queue.dispatch(cq.adjust(Invoice(1, 9.5), max_attempts=5))
    await tamper_with(driver).set_payload(job_id, raw)

    await run_until(queue, canary, QueueInfo(failed=1))

    errors = await failed_errors(queue)
    assert errors[job_id].startswith(f"DecodeError: cannot decode payload as {__name__}.Invoice")
    assert ran == []


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe not json at all",
        b'{"v":1,"id":"x","type":"builtins.int","handle_timeout_ms":1000,"attem',
        b'{"v":1,"id":"x","type":"builtins.int"}',
        b'{"v":3,"id":"x","type":"builtins.int","handle_timeout_ms":1000,"attempts":1,'
        b'"max_attempts":1,"value":"1","priority":"high"}',
    ],
    ids=["corrupt", "truncated", "fields-missing", "unknown-version"],
)
async def test_envelope_that_cannot_be_read_is_parked_in_failed_with_its_bytes_kept(
    driver: Driver, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # Only Redis stores one envelope per job. Its bytes stay as they are, so an operator (or a
    # newer release, after `reload`) can still read them; the reason goes to the log, as the
    # envelope that would carry `last_error` is the part that cannot be read.
    tamper = tamper_with(driver)
    queue = make_queue(driver)
    canary = Canary(queue)
    job_id = await queue.dispatch(cq.adjust(5, max_attempts=5))
    await tamper.set_envelope(job_id, raw)

    with caplog.at_level(logging.ERROR):
        await run_until(queue, canary, QueueInfo(failed=1))

    assert await tamper.parked(Channel.FAILED) == {job_id: raw}
    assert canary.served == [7]
    [record] = [r for r in caplog.records if job_id in r.getMessage()]
    assert "moved to failed" in record.getMessage()
    view = await driver.get_job(job_id)  # type: ignore[attr-defined]  # Redis, see above
    assert (view.channel, view.job.value) == (Channel.FAILED, raw)
    assert view.job.last_error  # the reason, for the dashboard and `corequeue queue`


async def test_a_pop_that_cannot_park_an_unreadable_envelope_still_hands_out_the_rest(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper = tamper_with(driver)
    broken = cq.PersistedJob(id="broken", type="builtins.int", value=b"1")
    fine = cq.PersistedJob(id="fine", type="builtins.int", value=b"2")
    await driver.push(broken, timedelta(0))
    await driver.push(fine, timedelta(0))
    await tamper.set_envelope("broken", b"\xff not an envelope")

    async def store_down(*args: Any) -> Any:
        raise redis_errors.ConnectionError("connection lost while parking")

    monkeypatch.setattr(driver._scripts["settle"], "run", store_down)  # type: ignore[attr-defined]
    jobs = await driver.pop_many(2)

    assert [job.id for job in jobs] == ["fine"]


@pytest.mark.parametrize(
    ("column", "value"),
    [("handle_timeout_ms", 2**62), ("backoff_ms", -(2**62))],
    ids=["timeout-out-of-range", "backoff-out-of-range"],
)
async def test_row_with_a_column_out_of_range_goes_to_failed_with_a_decode_error(
    driver: Driver, column: str, value: Any
) -> None:
    tamper = tamper_with(driver)
    queue = make_queue(driver)
    canary = Canary(queue)
    job_id = await queue.dispatch(cq.adjust(5, max_attempts=5))
    await tamper.set_column(job_id, column, value)

    await run_until(queue, canary, QueueInfo(failed=1))

    state, error = await tamper.last_error(job_id)
    assert state == "failed"
    assert error == f"DecodeError: stored column {column} holds {value}, out of range"
    assert canary.served == [7]
    # Inspection (the dashboard, `get_job`) shows the row as unreadable instead of failing.
    [listed] = await driver.list_jobs(Channel.FAILED)  # type: ignore[attr-defined]
    assert (listed.job.id, listed.job.type, listed.job.last_error) == (
        job_id,
        "<unreadable>",
        error,
    )
    assert await driver.get_job(job_id) == listed  # type: ignore[attr-defined]


async def test_sqlite_payload_written_as_text_is_read_as_its_utf8_bytes(driver: Driver) -> None:
    # SQLite columns take any type: a tool writing the payload as TEXT must not jam the queue.
    if not isinstance(driver, cq.SQLiteDriver):
        pytest.skip("SQLite only: the other stores type their columns")
    queue = make_queue(driver)
    canary = Canary(queue)
    ran: list[Invoice] = []

    @queue.listener(Invoice)
    async def collect(job: cq.ReceivedJob) -> None:
        ran.append(job.data)

    job_id = await queue.dispatch(Invoice(1, 9.5))
    await tamper_with(driver).set_column(job_id, "value", '{"number": 2, "total": 3.5}')

    await run_until(queue, canary, QueueInfo())

    assert ran == [Invoice(2, 3.5)]


# --- at dispatch -----------------------------------------------------------------------------


async def test_payload_over_the_size_limit_is_refused_at_dispatch_and_nothing_is_stored(
    driver: Driver,
) -> None:
    queue = make_queue(driver, max_payload_bytes=1000)

    with pytest.raises(cq.PayloadTooLarge, match=r"1002 bytes .* at most 1000"):
        await queue.dispatch("x" * 1000)
    with pytest.raises(ValueError, match="max_payload_bytes"):
        await queue.dispatch_many(["small", "y" * 5000, "also small"])

    assert await queue.info() == QueueInfo()
    await queue.dispatch("x" * 998)  # exactly at the limit: 998 characters and two quotes
    assert await queue.info() == QueueInfo(waiting=1)


# --- listeners ---------------------------------------------------------------------------------


async def test_job_type_with_no_listener_goes_to_failed_at_once(driver: Driver) -> None:
    queue = make_queue(driver)
    canary = Canary(queue)
    job_id = await queue.dispatch(cq.adjust(Invoice(1, 2.0), max_attempts=5))

    await run_until(queue, canary, QueueInfo(failed=1))

    assert await failed_errors(queue) == {
        job_id: f"NoListener: no listener subscribed to job type '{__name__}.Invoice'"
    }


async def test_listener_raising_an_exception_is_retried_then_failed_with_its_error(
    driver: Driver,
) -> None:
    queue = make_queue(driver)
    canary = Canary(queue)
    attempts: list[int] = []

    @queue.listener(Invoice)
    async def broken(job: cq.ReceivedJob) -> None:
        attempts.append(job.attempt)
        raise LookupError(f"no customer for invoice {job.data.number}")

    job_id = await queue.dispatch(cq.adjust(Invoice(4, 2.0), max_attempts=3))

    await run_until(queue, canary, QueueInfo(failed=1))

    assert attempts == [1, 2, 3]
    assert await failed_errors(queue) == {job_id: "LookupError: no customer for invoice 4"}


@pytest.mark.parametrize("exception", [SystemExit(3), KeyboardInterrupt()], ids=repr)
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_listener_raising_system_exit_or_keyboard_interrupt_fails_the_attempt_only(
    driver: Driver, exception: BaseException, kind: str
) -> None:
    queue = make_queue(driver)
    canary = Canary(queue)
    attempts: list[int] = []

    def quit_(job: cq.ReceivedJob) -> None:
        attempts.append(job.attempt)
        raise exception

    async def quit_async(job: cq.ReceivedJob) -> None:
        quit_(job)

    queue.subscribe(cq.listen(Invoice, quit_async if kind == "async" else quit_))
    job_id = await queue.dispatch(cq.adjust(Invoice(1, 2.0), max_attempts=2))

    await run_until(queue, canary, QueueInfo(failed=1))

    assert attempts == [1, 2]
    assert await failed_errors(queue) == {job_id: f"{type(exception).__name__}: {exception}"}


async def test_listener_raising_cancelled_error_by_itself_fails_the_attempt(
    driver: Driver,
) -> None:
    # A CancelledError the consumer did not ask for (say, leaked by a client library) is a
    # failure of the attempt: it must neither stop the worker nor send the job back uncounted,
    # which would run it again and again.
    queue = make_queue(driver)
    canary = Canary(queue)
    attempts: list[int] = []

    @queue.listener(Invoice)
    async def leaky(job: cq.ReceivedJob) -> None:
        attempts.append(job.attempt)
        raise asyncio.CancelledError("leaked by a client library")

    job_id = await queue.dispatch(cq.adjust(Invoice(1, 2.0), max_attempts=2))

    await run_until(queue, canary, QueueInfo(failed=1))

    assert attempts == [1, 2]
    assert await failed_errors(queue) == {job_id: "CancelledError: leaked by a client library"}


async def test_listener_that_never_returns_is_cancelled_at_its_handle_timeout(
    driver: Driver,
) -> None:
    queue = make_queue(driver)
    canary = Canary(queue)
    cancelled: list[int] = []

    @queue.listener(Invoice)
    async def stuck(job: cq.ReceivedJob) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(job.attempt)
            raise

    job_id = await queue.dispatch(
        cq.adjust(Invoice(1, 2.0), max_attempts=2, timeout=timedelta(milliseconds=100))
    )

    await run_until(queue, canary, QueueInfo(failed=1))

    assert cancelled == [1, 2]
    assert await failed_errors(queue) == {
        job_id: "HandleTimeout: listeners ran longer than 0:00:00.100000"
    }


async def test_sync_listener_that_never_returns_times_out_and_its_thread_is_left_running(
    driver: Driver,
) -> None:
    # A thread cannot be cancelled: the attempt fails at the handle timeout, and the function
    # goes on in its thread until it returns by itself.
    queue = make_queue(driver)
    canary = Canary(queue)
    release = threading.Event()
    finished: list[int] = []

    @queue.listener(Invoice)
    def stuck(job: cq.ReceivedJob) -> None:
        release.wait(30)
        finished.append(job.attempt)

    job_id = await queue.dispatch(
        cq.adjust(Invoice(1, 2.0), max_attempts=1, timeout=timedelta(milliseconds=100))
    )

    try:
        await run_until(queue, canary, QueueInfo(failed=1))
    finally:
        release.set()

    assert await failed_errors(queue) == {
        job_id: "HandleTimeout: listeners ran longer than 0:00:00.100000"
    }
    await eventually(lambda: _is_true(finished == [1]))


async def test_listener_blocking_the_event_loop_finishes_late_and_nothing_is_lost(
    driver: Driver,
) -> None:
    # time.sleep in an async listener freezes the whole loop: neither the handle timeout nor
    # the lease renewal can act until it returns. The job finishes late; as the block outlasts
    # the lease, the leases of every job the worker holds (this one, the canary it prefetched)
    # run out, so each counts a failed attempt and may run again (at-least-once). With no
    # attempts left, such a job would be parked in `timeout` even though it finished.
    lease = timedelta(milliseconds=300)
    driver.lease = lease  # type: ignore[misc]  # read-only in the protocol; settable on ours
    queue = make_queue(driver)
    canary = Canary(queue)
    runs: list[int] = []

    @queue.listener(Invoice)
    async def blocking(job: cq.ReceivedJob) -> None:
        runs.append(job.attempt)
        if len(runs) == 1:
            time.sleep(3 * lease.total_seconds())  # noqa: ASYNC251  # the misbehaviour under test

    await queue.dispatch(
        cq.adjust(Invoice(1, 2.0), max_attempts=3, timeout=timedelta(milliseconds=100))
    )

    await run_until(queue, canary, QueueInfo())

    assert runs[0] == 1
    assert runs == [1] or runs == [1, 2]
    assert canary.served[0] == 7


async def _is_true(value: bool) -> bool:
    return value
