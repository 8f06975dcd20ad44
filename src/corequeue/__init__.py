"""corequeue: a durable job queue for Python.

Example:
    >>> import corequeue as cq
    >>> queue = cq.Queue(cq.SQLiteDriver("jobs.db"), parallelism=8)  # doctest: +SKIP
"""

from typing import TYPE_CHECKING, Any

from corequeue.codec import Codec, JsonCodec, PickleCodec
from corequeue.config import ConfigError, load_config
from corequeue.drivers.base import (
    Channel,
    ChannelConfig,
    Driver,
    InspectDriver,
    JobView,
    QueueInfo,
    WorkerInfo,
)
from corequeue.drivers.in_process import InProcessDriver
from corequeue.drivers.sqlite import SQLiteDriver
from corequeue.errors import (
    CoreQueueError,
    DecodeError,
    DriverError,
    EncodeError,
    HandleTimeout,
    InvalidOption,
    JobCancelled,
    JobFailed,
    JobNotFound,
    MiddlewareError,
    NoListener,
    PayloadTooLarge,
    QueueEmpty,
    StoreUnavailable,
    WorkerCrashed,
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
from corequeue.factory import App, QueueFactory
from corequeue.job import DeferrableJob, Job, PersistedJob, ReceivedJob, adjust, job_from
from corequeue.limits import Limits, Rate
from corequeue.middleware import DispatchedJob, Middleware
from corequeue.periodic import PeriodicInfo
from corequeue.queue import Queue

if TYPE_CHECKING:
    from corequeue.drivers.postgres import PostgresDriver
    from corequeue.drivers.redis import RedisDriver

_LAZY = {
    "RedisDriver": "corequeue.drivers.redis",
    "PostgresDriver": "corequeue.drivers.postgres",
}


def __getattr__(name: str) -> Any:
    """Import the drivers of optional stores (redis, psycopg) only when first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'corequeue' has no attribute {name!r}")


__all__ = [
    "App",
    "BeforeAbort",
    "BeforeAbortPayload",
    "BeforeRetry",
    "BeforeRetryPayload",
    "Channel",
    "ChannelConfig",
    "Codec",
    "ConfigError",
    "CoreQueueError",
    "DecodeError",
    "DeferrableJob",
    "DispatchedJob",
    "Driver",
    "DriverError",
    "EncodeError",
    "HandleTimeout",
    "Handler",
    "InProcessDriver",
    "InspectDriver",
    "InvalidOption",
    "Job",
    "JobCancelled",
    "JobDispatcher",
    "JobFailed",
    "JobNotFound",
    "JobView",
    "JsonCodec",
    "Limits",
    "ListenFunc",
    "Middleware",
    "MiddlewareError",
    "NoListener",
    "PayloadTooLarge",
    "PeriodicInfo",
    "PersistedJob",
    "PickleCodec",
    "PostgresDriver",
    "Queue",
    "QueueEmpty",
    "QueueFactory",
    "QueueInfo",
    "Rate",
    "ReceivedJob",
    "RedisDriver",
    "SQLiteDriver",
    "StoreUnavailable",
    "SyncDispatcher",
    "WorkerCrashed",
    "WorkerInfo",
    "adjust",
    "job_from",
    "listen",
    "load_config",
]
