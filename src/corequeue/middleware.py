"""Middleware: hooks around dispatch and around the listeners of each attempt.

A middleware is any object with one or both of these methods (async, or plain functions):

- `on_dispatch(job: DispatchedJob, headers: dict[str, str]) -> None` runs before a job is
  stored; it may add headers, which travel in the envelope.
- `around_process(job: ReceivedJob, call_next) -> Any` wraps the listeners of one attempt;
  `await call_next()` runs the next middleware, the last one the listeners.

Hooks run in the order the middleware were given to `Queue(middleware=[...])`: the first
`on_dispatch` runs first, the first `around_process` is the outermost. A hook that raises
never jams anything: at dispatch the job is not stored and `MiddlewareError` names the hook; in
a worker the attempt fails with a `MiddlewareError` (retried while attempts remain), and what a
listener raised reaches the caller of `call_next` unchanged.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from corequeue.errors import InvalidOption, MiddlewareError
from corequeue.job import ReceivedJob, check_headers

CallNext = Callable[[], Awaitable[Any]]
"""What `around_process` calls to run the rest of the chain; returns the listeners' result."""


class Middleware:
    """An optional base class: both hooks, doing nothing. Override either.

    Example:
        >>> class RequestId(Middleware):
        ...     async def on_dispatch(self, job: DispatchedJob, headers: dict[str, str]) -> None:
        ...         headers["request-id"] = "r-42"
        ...
        ...     async def around_process(self, job: ReceivedJob, call_next: CallNext) -> Any:
        ...         print("request", job.headers.get("request-id"))
        ...         return await call_next()
    """

    async def on_dispatch(self, job: DispatchedJob, headers: dict[str, str]) -> None:
        """Add headers to `job` before it is stored (does nothing here)."""

    async def around_process(self, job: ReceivedJob, call_next: CallNext) -> Any:
        """Run the listeners of one attempt of `job` (here: just that)."""
        return await call_next()


@dataclass(frozen=True, slots=True)
class DispatchedJob:
    """What `on_dispatch` receives: the job as dispatched and where it is going.

    Attributes:
        type: The job type name.
        data: The payload as given to `dispatch` (not yet encoded).
        id: The id the job is stored under.
        queue: The name of the queue.
        delay: How long the job waits before it may run.
    """

    type: str
    data: Any
    id: str
    queue: str
    delay: timedelta


class Chain:
    """The hooks of a queue's middleware, in order, ready to run.

    Args:
        middleware: The objects given to `Queue(middleware=...)`.

    Raises:
        InvalidOption: For an object with neither hook, or a hook that is not callable.
    """

    def __init__(self, middleware: Sequence[object]) -> None:
        if isinstance(middleware, str | bytes) or not isinstance(middleware, Sequence):
            raise InvalidOption(f"middleware must be a list, got {type(middleware).__name__}")
        self.dispatch_hooks: list[tuple[str, Callable[..., Any]]] = []
        self.process_hooks: list[tuple[str, Callable[..., Any]]] = []
        for item in middleware:
            found = False
            for hook, hooks in (
                ("on_dispatch", self.dispatch_hooks),
                ("around_process", self.process_hooks),
            ):
                method = getattr(item, hook, None)
                if method is None:
                    continue
                if not callable(method):
                    raise InvalidOption(f"middleware {_name(item)}: {hook} is not callable")
                hooks.append((f"{_name(item)}.{hook}", method))
                found = True
            if not found:
                raise InvalidOption(
                    f"middleware {_name(item)} has neither on_dispatch nor around_process"
                )

    async def headers_for(
        self, job: DispatchedJob, given: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Run every `on_dispatch` hook on a copy of `given` (default: none); return it, checked.

        Raises:
            MiddlewareError: A hook raised, or left headers that are not a bounded map of
                text to text.
        """
        headers: dict[str, str] = dict(given or {})
        for name, hook in self.dispatch_hooks:
            try:
                result = hook(job, headers)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                raise MiddlewareError(
                    f"middleware {name} raised on job type {job.type!r}, which was not "
                    f"dispatched: {type(exc).__name__}: {exc}"
                ) from exc
        try:
            return check_headers(headers)
        except InvalidOption as exc:
            raise MiddlewareError(
                f"middleware left bad headers on job type {job.type!r}, which was not "
                f"dispatched: {exc}"
            ) from exc

    def headers_for_sync(
        self, job: DispatchedJob, given: dict[str, str] | None = None
    ) -> dict[str, str]:
        """`headers_for` from synchronous code with no running event loop.

        The hooks run on a short-lived event loop in this thread, in a copy of this thread's
        context (so a trace started by the caller is the current one inside the hooks).
        """
        return asyncio.run(self.headers_for(job, given))

    async def process(self, job: ReceivedJob, listeners: CallNext) -> Any:
        """Run the `around_process` hooks around `listeners`; return what the chain returns.

        Raises:
            MiddlewareError: A hook raised an exception of its own (not one passed up from
                `call_next`), with that exception as the cause.
            BaseException: What the listeners raised, as raised, when the hooks let it through.
        """
        if not self.process_hooks:
            return await listeners()
        passed_up: set[int] = set()
        return await self._layer(0, job, listeners, passed_up)

    async def _layer(
        self, index: int, job: ReceivedJob, listeners: CallNext, passed_up: set[int]
    ) -> Any:
        if index == len(self.process_hooks):
            return await listeners()
        name, hook = self.process_hooks[index]

        async def call_next() -> Any:
            try:
                return await self._layer(index + 1, job, listeners, passed_up)
            except BaseException as exc:
                passed_up.add(id(exc))
                raise

        try:
            return await hook(job, call_next)
        except asyncio.CancelledError:
            raise  # the handle timeout or a shutdown: the consumer decides
        except Exception as exc:
            if id(exc) in passed_up:
                raise
            raise MiddlewareError(f"middleware {name} raised: {type(exc).__name__}: {exc}") from exc


def _name(item: object) -> str:
    """The middleware's class name as written (without the `<locals>` of a nested class)."""
    return type(item).__qualname__.rsplit("<locals>.", 1)[-1]
