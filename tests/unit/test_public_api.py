"""The public API of SPEC.md, exactly."""

from __future__ import annotations

import corequeue as cq

SPEC_NAMES = {
    "BeforeAbort", "BeforeAbortPayload", "BeforeRetry", "BeforeRetryPayload", "Channel",
    "ChannelConfig", "Codec", "DeferrableJob", "Driver", "Handler", "InProcessDriver", "Job",
    "ListenFunc", "PersistedJob", "PostgresDriver", "Queue", "QueueEmpty", "QueueInfo",
    "RedisDriver", "SQLiteDriver", "SyncDispatcher", "adjust", "job_from", "listen",
}  # fmt: skip


def test_all_is_sorted() -> None:
    assert cq.__all__ == sorted(cq.__all__)


def test_all_lists_every_spec_name_and_each_resolves() -> None:
    assert set(cq.__all__) >= SPEC_NAMES
    for name in cq.__all__:
        assert getattr(cq, name) is not None


def test_every_exception_derives_from_core_queue_error() -> None:
    for name in cq.__all__:
        value = getattr(cq, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, cq.CoreQueueError), name
