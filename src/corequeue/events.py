"""Events and the in-memory SyncDispatcher that delivers jobs and events to listeners.

The queue fires `BeforeRetry` when a failed job will be retried and `BeforeAbort` when it has run
out of attempts. Subscribe to them on the queue's event dispatcher:

    events = cq.SyncDispatcher()
    events.subscribe(cq.listen(cq.BeforeAbortPayload, alert_on_call))
    queue = cq.Queue(driver, event_dispatcher=events)
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

from corequeue.job import Job, PersistedJob, is_job, job_from, type_name_of

BeforeRetry = "beforeRetry"
"""Type name of the event fired before a failed job is retried."""

BeforeAbort = "beforeAbort"
"""Type name of the event fired before a job out of attempts goes to `failed`."""


@dataclass(frozen=True, slots=True)
class BeforeRetryPayload:
    """Data of the `BeforeRetry` event: the error and the job about to be retried."""

    __job_type__ = BeforeRetry

    err: BaseException
    job: PersistedJob


@dataclass(frozen=True, slots=True)
class BeforeAbortPayload:
    """Data of the `BeforeAbort` event: the error and the job about to be failed."""

    __job_type__ = BeforeAbort

    err: BaseException
    job: PersistedJob


@runtime_checkable
class Handler(Protocol):
    """A listener: says which job it wants and processes it.

    Example:
        >>> class Greeter:
        ...     def listen(self) -> type:
        ...         return str
        ...     async def process(self, job: Job) -> None:
        ...         print("hello", job.data)
    """

    def listen(self) -> type[Any] | Job | str:
        """Return the payload class, a job of the wanted type, or the type name itself."""
        ...

    async def process(self, job: Job) -> None:
        """Handle one job; raise to make the attempt fail."""
        ...


@runtime_checkable
class JobDispatcher(Protocol):
    """Delivers a job to the listeners that subscribed to its type."""

    async def dispatch(self, job: Job) -> Any:
        """Call every listener of `job.type`; raise the first error.

        What it returns is the job's result (kept when the queue keeps results): the
        SyncDispatcher returns the list of its listeners' return values.
        """
        ...

    def subscribe(self, listener: Handler) -> None:
        """Register `listener` for the type it listens to."""
        ...


ListenerCallable = Callable[[Any], Awaitable[Any]] | Callable[[Any], Any]


class ListenFunc:
    """A listener built from a function: `listen(SendEmail, send_email)`.

    A plain `def` function runs in a worker thread, so it may block.
    """

    def __init__(self, wanted: type[Any] | Job | str, fn: ListenerCallable) -> None:
        self.job_type, self.payload_class = listened_type(wanted)
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)

    def listen(self) -> type[Any] | Job | str:
        """Return the wanted type name and class as a job."""
        return self.job_type if self.payload_class is None else _TypeMarker(self)

    async def process(self, job: Job) -> Any:
        """Call the function with `job`, in a thread if it is synchronous; return its result."""
        if self.is_async:
            return await self.fn(job)
        return await asyncio.to_thread(self.fn, job)

    def __repr__(self) -> str:
        return f"listen({self.job_type!r}, {getattr(self.fn, '__qualname__', self.fn)!r})"


@dataclass(frozen=True, slots=True)
class _TypeMarker:
    """A Job-shaped answer to `listen()` carrying both the type name and the payload class."""

    listener: ListenFunc

    @property
    def type(self) -> str:
        return self.listener.job_type

    @property
    def data(self) -> builtins.type[Any] | None:
        return self.listener.payload_class


def listen(wanted: type[Any] | Job | str, fn: ListenerCallable) -> ListenFunc:
    """Make a listener from a function.

    Args:
        wanted: The payload class (`SendEmail`), a job of the wanted type (`job_from(0)`), or a
            type name (`"example"`, payload left undecoded beyond JSON).
        fn: `async def fn(job)` or `def fn(job)` (run in a thread).

    Example:
        >>> async def show(job: Job) -> None:
        ...     print(job.data)
        >>> listener = listen(int, show)
        >>> listener.job_type
        'builtins.int'
    """
    return ListenFunc(wanted, fn)


def listened_type(wanted: Any) -> tuple[str, type[Any] | None]:
    """Return the job type name and payload class that a `listen()` answer stands for."""
    if isinstance(wanted, _TypeMarker):
        return wanted.type, wanted.data
    if isinstance(wanted, type):
        return type_name_of(wanted), wanted
    if isinstance(wanted, Job):  # before str: a str subclass may be a Job of its own
        data = wanted.data
        return wanted.type, None if data is None else type(data)
    if isinstance(wanted, str):
        return wanted, None
    raise TypeError(f"listen() wants a class, a Job or a type name, got {wanted!r}")


class SyncDispatcher:
    """Delivers jobs in memory, at once: every listener of the type, in subscription order.

    The first listener error stops the dispatch and is raised. Nothing is persisted.

    Example:
        >>> import asyncio
        >>> sync = SyncDispatcher()
        >>> async def show(job: Job) -> None:
        ...     print(job.data)
        >>> sync.subscribe(listen(int, show))
        >>> asyncio.run(sync.dispatch(job_from(100)))
        100
    """

    def __init__(self) -> None:
        self._listeners: dict[str, list[Handler]] = {}
        # Per type, the calls to make: found once at subscribe time, not once per job.
        self._calls: dict[str, list[Callable[[Job], Awaitable[Any]]]] = {}

    def subscribe(self, listener: Handler) -> None:
        """Register `listener` for the job type it listens to."""
        job_type, _ = listened_type(listener.listen())
        self._listeners.setdefault(job_type, []).append(listener)
        self._calls.setdefault(job_type, []).append(_call_of(listener))

    async def dispatch(self, job: Any) -> list[Any]:
        """Call every listener of the job's type in order; raise the first error.

        A value that is not a Job is wrapped with `job_from` first.

        Returns:
            What each listener returned, in subscription order.
        """
        if not is_job(job):
            job = job_from(job)
        return [await call(job) for call in self._calls.get(job.type, ())]

    def has_listeners(self, job_type: str) -> bool:
        """Return whether any listener subscribed to `job_type`."""
        return bool(self._listeners.get(job_type))


def _call_of(listener: Handler) -> Callable[[Job], Awaitable[Any]]:
    """Return how to run `listener` for one job: its coroutine, or its plain def in a thread."""
    if type(listener) is ListenFunc and listener.is_async:  # not a subclass: it may override
        return cast(Callable[[Job], Awaitable[Any]], listener.fn)
    if inspect.iscoroutinefunction(listener.process):
        return cast(Callable[[Job], Awaitable[Any]], listener.process)
    blocking = cast(Callable[[Job], Any], listener.process)  # a plain def may block: off the loop

    async def in_thread(job: Job) -> Any:
        return await asyncio.to_thread(blocking, job)

    return in_thread
