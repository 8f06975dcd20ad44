"""corequeue: a durable job queue for Python."""

from corequeue.codec import Codec, JsonCodec, PickleCodec
from corequeue.drivers.base import Channel, ChannelConfig, Driver, QueueInfo
from corequeue.drivers.in_process import InProcessDriver
from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.errors import (
    CoreQueueError,
    DecodeError,
    DriverError,
    InvalidOption,
    QueueEmpty,
    StoreUnavailable,
)
from corequeue.events import (
    BeforeAbort,
    BeforeAbortPayload,
    BeforeRetry,
    BeforeRetryPayload,
    Handler,
    JobDispatcher,
    ListenFunc,
    SyncDispatcher,
    listen,
)
from corequeue.job import DeferrableJob, Job, PersistedJob, ReceivedJob, adjust, job_from

__all__ = [
    "BeforeAbort",
    "BeforeAbortPayload",
    "BeforeRetry",
    "BeforeRetryPayload",
    "Channel",
    "ChannelConfig",
    "Codec",
    "CoreQueueError",
    "DecodeError",
    "DeferrableJob",
    "Driver",
    "DriverError",
    "Handler",
    "InProcessDriver",
    "InvalidOption",
    "Job",
    "JobDispatcher",
    "JsonCodec",
    "ListenFunc",
    "PersistedJob",
    "PickleCodec",
    "QueueEmpty",
    "QueueInfo",
    "ReceivedJob",
    "SQLiteDriver",
    "StoreUnavailable",
    "SyncDispatcher",
    "adjust",
    "job_from",
    "listen",
]
