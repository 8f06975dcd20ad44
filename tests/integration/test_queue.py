"""The Queue end to end over every driver: dispatch, consume, retry, abort, bad input, shutdown."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import corequeue as cq
from corequeue.drivers.base import Channel, Driver, QueueInfo
from tests.integration.conftest import consuming, eventually

FAST_RETRY = timedelta(milliseconds=20)


@dataclass
class SendEmail:
    to: str
    subject: str


def make_queue(driver: Driver, **options: Any) -> cq.Queue:
    options.setdefault("backoff", lambda previous: FAST_RETRY)
    return cq.Queue(driver, **options)


async def empty(queue: cq.Queue) -> bool:
    return await queue.info() == QueueInfo()


async def test_listener_receives_the_typed_payload_and_delivery_facts(driver: Driver) -> None:
    queue = make_queue(driver)
    received: list[cq.ReceivedJob] = []
    done = asyncio.Event()

    @queue.listener(SendEmail)
    async def send(job: cq.ReceivedJob) -> None:
        received.append(job)
        done.set()

    job_id = await queue.dispatch(cq.adjust(SendEmail("a@example.com", "hi"), max_attempts=4))
    async with consuming(queue):
        await asyncio.wait_for(done.wait(), 10)
        await eventually(lambda: empty(queue))

    [job] = received
    assert (job.type, job.data) == (f"{__name__}.SendEmail", SendEmail("a@example.com", "hi"))
    assert (job.id, job.attempt, job.max_attempts) == (job_id, 1, 4)


async def test_failing_job_is_retried_until_it_succeeds(driver: Driver) -> None:
    events = cq.SyncDispatcher()
    retries: list[cq.BeforeRetryPayload] = []

    async def on_retry(event: cq.Job) -> None:
        retries.append(event.data)

    events.subscribe(cq.listen(cq.BeforeRetryPayload, on_retry))
    queue = make_queue(driver, event_dispatcher=events)
    attempts: list[int] = []
    done = asyncio.Event()

    @queue.listener(SendEmail)
    async def flaky(job: cq.ReceivedJob) -> None:
        attempts.append(job.attempt)
        if job.attempt < 3:
            raise ConnectionError(f"smtp down ({job.attempt})")
        done.set()

    await queue.dispatch(cq.adjust(SendEmail("a", "b"), max_attempts=3))
    async with consuming(queue):
        await asyncio.wait_for(done.wait(), 10)
        await eventually(lambda: empty(queue))

    assert attempts == [1, 2, 3]
    assert [str(event.err) for event in retries] == ["smtp down (1)", "smtp down (2)"]


async def test_job_out_of_attempts_goes_to_failed_with_its_error(driver: Driver) -> None:
    events = cq.SyncDispatcher()
    aborted: list[cq.BeforeAbortPayload] = []

    async def on_abort(event: cq.Job) -> None:
        aborted.append(event.data)

    events.subscribe(cq.listen(cq.BeforeAbortPayload, on_abort))
    queue = make_queue(driver, event_dispatcher=events)

    @queue.listener(SendEmail)
    async def broken(job: cq.ReceivedJob) -> None:
        raise ValueError("no such mailbox")

    job_id = await queue.dispatch(cq.adjust(SendEmail("a", "b"), max_attempts=2))
    async with consuming(queue):
        await eventually(lambda: has_failed(queue, 1))

    [event] = aborted
    assert (event.job.id, event.job.attempts, str(event.err)) == (job_id, 2, "no such mailbox")
    assert await failed_errors(queue) == ["ValueError: no such mailbox"]


async def test_failing_event_listener_never_loses_the_job(driver: Driver) -> None:
    events = cq.SyncDispatcher()

    async def explode(event: cq.Job) -> None:
        raise RuntimeError("event listener bug")

    events.subscribe(cq.listen(cq.BeforeRetryPayload, explode))
    events.subscribe(cq.listen(cq.BeforeAbortPayload, explode))
    queue = make_queue(driver, event_dispatcher=events)
    attempts: list[int] = []

    @queue.listener(int)
    async def broken(job: cq.ReceivedJob) -> None:
        attempts.append(job.attempt)
        raise ValueError("boom")

    await queue.dispatch(cq.adjust(1, max_attempts=2))
    async with consuming(queue):
        await eventually(lambda: has_failed(queue, 1))

    assert attempts == [1, 2]


async def test_handler_over_its_timeout_is_cancelled_and_the_attempt_fails(
    driver: Driver,
) -> None:
    queue = make_queue(driver)
    cancelled = asyncio.Event()

    @queue.listener(int)
    async def slow(job: cq.ReceivedJob) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    await queue.dispatch(cq.adjust(1, timeout=timedelta(milliseconds=50)))
    async with consuming(queue):
        await eventually(lambda: has_failed(queue, 1))

    assert cancelled.is_set()
    [error] = await failed_errors(queue)
    assert error.startswith("HandleTimeout: listeners ran longer than")


async def test_every_listener_of_a_type_runs_and_one_failure_retries_the_job(
    driver: Driver,
) -> None:
    queue = make_queue(driver)
    calls: list[str] = []

    @queue.listener(int)
    async def first(job: cq.ReceivedJob) -> None:
        calls.append(f"first {job.attempt}")

    @queue.listener(int)
    async def second(job: cq.ReceivedJob) -> None:
        calls.append(f"second {job.attempt}")
        if job.attempt == 1:
            raise RuntimeError("second failed")

    await queue.dispatch(cq.adjust(7, max_attempts=2))
    async with consuming(queue):
        await eventually(lambda: done_after(queue, calls, 4))

    assert calls == ["first 1", "second 1", "first 2", "second 2"]


async def test_a_job_running_longer_than_its_lease_keeps_it_by_renewing(driver: Driver) -> None:
    driver.lease = timedelta(milliseconds=300)  # type: ignore[misc]
    queue = make_queue(driver, parallelism=2)
    runs: list[int] = []

    @queue.listener(int)
    async def long_job(job: cq.ReceivedJob) -> None:
        runs.append(job.attempt)
        await asyncio.sleep(1.0)  # the work itself: three leases long

    await queue.dispatch(cq.adjust(1, max_attempts=3))
    async with consuming(queue):
        await eventually(lambda: done_after(queue, runs, 1))

    assert runs == [1]


# --- bad input ----------------------------------------------------------------------------


async def test_job_type_without_listener_goes_to_failed_and_the_worker_keeps_going(
    driver: Driver,
) -> None:
    queue = make_queue(driver)
    served = asyncio.Event()

    @queue.listener(int)
    async def serve(job: cq.ReceivedJob) -> None:
        served.set()

    await queue.dispatch(cq.adjust("nobody listens", max_attempts=5))
    await queue.dispatch(1)
    async with consuming(queue):
        await asyncio.wait_for(served.wait(), 10)
        await eventually(lambda: has_failed(queue, 1))

    assert await failed_errors(queue) == [
        "NoListener: no listener subscribed to job type 'builtins.str'"
    ]


async def test_payload_that_no_longer_fits_its_class_goes_to_failed(driver: Driver) -> None:
    queue = make_queue(driver)

    @queue.listener(SendEmail)
    async def send(job: cq.ReceivedJob) -> None:
        raise AssertionError("must not run")

    await queue.dispatch(cq.job_from({"to": "a"}, type_name=cq.job_from(SendEmail("", "")).type))
    async with consuming(queue):
        await eventually(lambda: has_failed(queue, 1))

    [error] = await failed_errors(queue)
    assert error.startswith("DecodeError: cannot decode payload as")
    assert "subject" in error


async def test_undecodable_bytes_go_to_failed(driver: Driver) -> None:
    queue = make_queue(driver)

    @queue.listener(int)
    async def serve(job: cq.ReceivedJob) -> None:
        raise AssertionError("must not run")

    await driver.push(
        cq.PersistedJob(id="junk", type="builtins.int", value=b"\xff\x00{"), FAST_RETRY
    )
    async with consuming(queue):
        await eventually(lambda: has_failed(queue, 1))

    [error] = await failed_errors(queue)
    assert error.startswith("DecodeError:")


@pytest.mark.parametrize("exception", [SystemExit(3), KeyboardInterrupt()])
async def test_listener_raising_system_exit_fails_the_job_not_the_worker(
    driver: Driver, exception: BaseException
) -> None:
    queue = make_queue(driver)
    served = asyncio.Event()

    @queue.listener(str)
    async def quit_(job: cq.ReceivedJob) -> None:
        raise exception

    @queue.listener(int)
    async def serve(job: cq.ReceivedJob) -> None:
        served.set()

    await queue.dispatch("quit")
    await queue.dispatch(2)
    async with consuming(queue) as task:
        await asyncio.wait_for(served.wait(), 10)
        await eventually(lambda: has_failed(queue, 1))
        assert not task.done()


async def test_oversized_payload_is_refused_at_dispatch(driver: Driver) -> None:
    queue = make_queue(driver, max_payload_bytes=100)

    with pytest.raises(cq.PayloadTooLarge, match="100"):
        await queue.dispatch("x" * 200)

    assert await queue.info() == QueueInfo()


# --- dispatch forms -----------------------------------------------------------------------


async def test_unique_id_makes_dispatch_idempotent(driver: Driver) -> None:
    queue = make_queue(driver)

    first = await queue.dispatch(cq.adjust(1, unique_id="welcome-42", defer=timedelta(hours=1)))
    second = await queue.dispatch(cq.adjust(2, unique_id="welcome-42", defer=timedelta(hours=1)))

    assert first == second == "welcome-42"
    assert await queue.info() == QueueInfo(delayed=1)


async def test_cancelled_job_never_runs(driver: Driver) -> None:
    queue = make_queue(driver)
    ran: list[int] = []

    @queue.listener(int)
    async def record(job: cq.ReceivedJob) -> None:
        ran.append(job.data)

    cancelled = await queue.dispatch(cq.adjust(1, defer=timedelta(milliseconds=100)))
    assert await queue.cancel(cancelled) is True
    assert await queue.cancel(cancelled) is False
    await queue.dispatch(cq.adjust(2, defer=timedelta(milliseconds=150)))
    async with consuming(queue):
        await eventually(lambda: done_after(queue, ran, 1))

    assert ran == [2]


async def test_dispatch_many_enqueues_all(driver: Driver) -> None:
    queue = make_queue(driver, parallelism=4)
    ran: list[int] = []

    @queue.listener(int)
    async def record(job: cq.ReceivedJob) -> None:
        ran.append(job.data)

    ids = await queue.dispatch_many([*range(50), cq.adjust(50, defer=timedelta(milliseconds=50))])
    async with consuming(queue):
        await eventually(lambda: done_after(queue, ran, 51))

    assert len(set(ids)) == 51
    assert sorted(ran) == list(range(51))


async def test_deferred_job_never_runs_early(driver: Driver) -> None:
    queue = make_queue(driver)
    loop = asyncio.get_running_loop()
    ran_at: list[float] = []

    @queue.listener(int)
    async def record(job: cq.ReceivedJob) -> None:
        ran_at.append(loop.time())

    async with consuming(queue):
        dispatched_at = loop.time()
        await queue.dispatch(cq.adjust(1, defer=timedelta(milliseconds=300)))
        await eventually(lambda: done_after(queue, ran_at, 1))

    assert ran_at[0] - dispatched_at >= 0.3 - 0.002  # the loop clock and the store clock differ


async def test_jobs_run_in_parallel_up_to_parallelism(driver: Driver) -> None:
    queue = make_queue(driver, parallelism=3)
    running = 0
    peak = 0
    all_in = asyncio.Event()

    @queue.listener(int)
    async def hold(job: cq.ReceivedJob) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 10)
        running -= 1

    await queue.dispatch_many(range(6))
    async with consuming(queue):
        await eventually(lambda: empty(queue))

    assert peak == 3


def test_dispatch_sync_works_from_plain_code(driver: Driver) -> None:
    # Sync code has no event loop; the driver fixture's loop is not running in this thread.
    queue = make_queue(driver)
    result: list[str] = []

    thread = threading.Thread(target=lambda: result.append(queue.dispatch_sync(5)))
    thread.start()
    thread.join()

    assert len(result) == 1


async def test_dispatch_sync_inside_a_running_loop_is_refused(driver: Driver) -> None:
    with pytest.raises(cq.CoreQueueError, match="await dispatch"):
        make_queue(driver).dispatch_sync(1)


# --- graceful shutdown --------------------------------------------------------------------


async def test_shutdown_lets_in_flight_jobs_finish_within_the_grace_period(
    driver: Driver,
) -> None:
    queue = make_queue(driver, shutdown_grace=timedelta(seconds=10))
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[int] = []

    @queue.listener(int)
    async def work(job: cq.ReceivedJob) -> None:
        started.set()
        await release.wait()
        finished.append(job.data)

    await queue.dispatch(1)
    task = asyncio.create_task(queue.consume(handle_signals=False))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    await asyncio.sleep(0)  # let the cancellation reach the consumer before the job may end
    release.set()
    await asyncio.gather(task, return_exceptions=True)

    assert finished == [1]
    assert await queue.info() == QueueInfo()


async def test_shutdown_returns_unfinished_jobs_to_waiting_without_counting_an_attempt(
    driver: Driver,
) -> None:
    queue = make_queue(driver, shutdown_grace=timedelta(milliseconds=50))
    started = asyncio.Event()

    @queue.listener(int)
    async def stuck(job: cq.ReceivedJob) -> None:
        started.set()
        await asyncio.Event().wait()

    await queue.dispatch(cq.adjust(1, max_attempts=1))
    task = asyncio.create_task(queue.consume(handle_signals=False))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert await queue.info() == QueueInfo(waiting=1)
    job = await driver.pop()
    assert (job.attempts, job.last_error) == (1, None)


# --- helpers ------------------------------------------------------------------------------


async def has_failed(queue: cq.Queue, count: int) -> bool:
    return await queue.info() == QueueInfo(failed=count)


async def done_after(queue: cq.Queue, seen: list[Any], count: int) -> bool:
    return len(seen) >= count and await queue.info() == QueueInfo()


async def failed_errors(queue: cq.Queue) -> list[str]:
    """Reload the failed jobs and read their last errors straight from the driver."""
    moved = await queue.driver.reload(Channel.FAILED)
    errors = []
    for _ in range(moved):
        job = await queue.driver.pop()
        errors.append(job.last_error or "")
        await queue.driver.ack(job)
    return errors
