"""QueueFactory builds the named queues of a configuration; App runs their consumers together.

A driver name (memory, sqlite, redis, postgres) is mapped to its builder by the one driver
registry, `corequeue.config.DRIVER_REGISTRY`; the drivers of optional stores are imported only
when a queue needs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from corequeue.codec import Codec
from corequeue.config import BUILT_IN, DRIVER_REGISTRY, Config, QueueSettings, parse_config
from corequeue.drivers.base import Driver
from corequeue.errors import InvalidOption
from corequeue.events import JobDispatcher
from corequeue.metrics import Gauge, JobMetrics, LabelledGauge, prometheus_metrics
from corequeue.queue import Queue

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

DriverConstructor: TypeAlias = Callable[[str, QueueSettings], Driver]
"""Builds the driver of one queue from its name and settings (Go: WithDriverConstructor)."""

_log = logging.getLogger("corequeue")


class QueueFactory:
    """Makes the named queues of a configuration, one shared Queue per name (Go: DispatcherMaker).

    Args:
        config: The configuration (see `corequeue.config.load_config`); None means the built-in
            default, one `default` queue on SQLite `corequeue.db`.
        driver: None to build each queue's driver from its settings; a driver instance to use
            for every queue (Go: WithDriver); or a callable `(queue_name, settings) -> Driver`
            for drivers of your own (Go: WithDriverConstructor).
        gauge: Receives queue lengths (default: the prometheus gauge `corequeue_queue_length`).
        metrics: Receives one observation per finished attempt (default: the prometheus job
            counters and duration histogram).
        prometheus: Whether missing `gauge` / `metrics` come from prometheus_client.
        registry: The prometheus registry of the default collectors (default: the global one).
        codec: The codec of every queue (default: JSON).
        event_dispatcher: Receives BeforeRetry / BeforeAbort events of every queue.
        logger: Where the queues log (default: the "corequeue" logger).
        middleware: The middleware of every queue (see `Queue(middleware=...)`).

    Example:
        >>> factory = QueueFactory(load_config("corequeue.yaml"))  # doctest: +SKIP
        >>> emails = factory.make("emails")  # doctest: +SKIP
        >>> emails is factory.make("emails")  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        driver: Driver | DriverConstructor | None = None,
        gauge: Gauge | LabelledGauge | None = None,
        metrics: JobMetrics | None = None,
        prometheus: bool = True,
        registry: CollectorRegistry | None = None,
        codec: Codec | None = None,
        event_dispatcher: JobDispatcher | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        middleware: Sequence[object] = (),
    ) -> None:
        self.config = config or parse_config({}, source=BUILT_IN)
        self.registry = registry
        self._driver = driver
        self._gauge = gauge
        self._metrics = metrics
        self._prometheus = prometheus
        self._queue_options: dict[str, Any] = {
            "codec": codec,
            "event_dispatcher": event_dispatcher,
            "logger": logger,
            "middleware": middleware,
        }
        self._queues: dict[str, Queue] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        """The configured queue names, then any other queue made so far (such as `default`)."""
        made = [name for name in self._queues if name not in self.config.queues]
        return (*self.config.names, *made)

    @property
    def made(self) -> Mapping[str, Queue]:
        """The queues made so far, by name."""
        with self._lock:
            return MappingProxyType(dict(self._queues))

    def make(self, name: str = "default") -> Queue:
        """Return the Queue called `name`, building it on first use.

        Raises:
            InvalidOption: `name` is neither configured nor `default`; the message lists the
                configured names.
        """
        with self._lock:
            if name not in self._queues:
                self._queues[name] = self._build(self.config.queue(name))
            return self._queues[name]

    def settings(self, name: str) -> QueueSettings:
        """Return the settings of queue `name` (see `make` for the errors)."""
        return self.config.queue(name)

    def describe(self, name: str) -> str:
        """Return where queue `name` keeps its jobs, passwords hidden."""
        if self._driver is not None:
            return f"custom driver {type(self.make(name).driver).__name__}"
        return self.settings(name).describe()

    async def close(self) -> None:
        """Close every queue made so far, and their drivers."""
        with self._lock:
            queues, self._queues = list(self._queues.values()), {}
        for queue in queues:
            try:
                await queue.close()
            except Exception:  # one store failing to close must not keep the others open
                _log.exception("queue %s: cannot close", queue.name)

    def _build(self, settings: QueueSettings) -> Queue:
        gauge, metrics = self._gauge, self._metrics
        if self._prometheus and (gauge is None or metrics is None):
            collectors = prometheus_metrics(self.registry)
            gauge, metrics = gauge or collectors.gauge, metrics or collectors
        queue = Queue(
            self._driver_of(settings),
            name=settings.name,
            parallelism=settings.parallelism,
            gauge=gauge,
            gauge_interval=settings.check_queue_length_interval,
            metrics=metrics,
            shutdown_grace=settings.shutdown_grace,
            **self._options_of(settings),
        )
        for periodic in settings.periodic:  # schedules declared in the configuration file
            queue.periodic(
                periodic.schedule,
                periodic.job(),
                name=periodic.name,
                tz=periodic.tz,
                misfire=periodic.misfire,
            )
        return queue

    def _options_of(self, settings: QueueSettings) -> dict[str, Any]:
        """The factory's Queue options, with the configured limits unless those name some."""
        options: dict[str, Any] = dict(self._queue_options)
        if settings.limits is not None:
            options.setdefault("limits", settings.limits)
        return options

    def _driver_of(self, settings: QueueSettings) -> Driver:
        if self._driver is None:
            return build_driver(settings)
        if isinstance(self._driver, Driver) and not isinstance(self._driver, type):
            return self._driver
        construct = cast(DriverConstructor, self._driver)
        return construct(settings.name, settings)


def build_driver(settings: QueueSettings) -> Driver:
    """Return the driver `settings` names, built by its entry of the driver registry.

    redis and psycopg are imported only when a queue needs them.

    Example:
        >>> build_driver(QueueSettings("emails", "memory"))  # doctest: +ELLIPSIS
        <corequeue.drivers.in_process.InProcessDriver object at ...>
    """
    return DRIVER_REGISTRY[settings.driver].build(settings.name, settings.store)


class App:
    """Runs the consumers of several queues together and stops them together, gracefully.

    SIGTERM or SIGINT (main thread only) stops every consumer: each stops popping, lets its
    in-flight jobs finish within the queue's grace period (`shutdownGraceSecond`), and returns
    the rest to `waiting` without counting an attempt.

    Args:
        factory: The queues' factory (default: the built-in configuration).
        queues: The queues to consume, by name or as Queue objects built elsewhere (default:
            every configured queue and every queue made through the factory so far). The app
            closes them all when it stops.
        handle_signals: Turn SIGTERM and SIGINT into a graceful stop.

    Example:
        >>> factory = QueueFactory(load_config())  # doctest: +SKIP
        >>> factory.make("emails").subscribe(cq.listen(SendEmail, send_email))  # doctest: +SKIP
        >>> await App(factory).run()  # until SIGTERM  # doctest: +SKIP

        Or around code of your own:

        >>> async with App(factory) as app:  # doctest: +SKIP
        ...     await factory.make("emails").dispatch(SendEmail("a@example.com"))
        ...     await app.wait()  # until SIGTERM or app.stop()
    """

    def __init__(
        self,
        factory: QueueFactory | None = None,
        *,
        queues: Iterable[str | Queue] | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.factory = factory or QueueFactory()
        self._names = None if queues is None else tuple(queues)
        self._handle_signals = handle_signals
        self._stopping: asyncio.Event | None = None
        self._running: asyncio.Task[None] | None = None

    @property
    def queues(self) -> list[Queue]:
        """The queues this app consumes (made through the factory on first access)."""
        chosen = self.factory.names if self._names is None else self._names
        return [item if isinstance(item, Queue) else self.factory.make(item) for item in chosen]

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for (by `stop()` or a signal)."""
        return self._stopping is not None and self._stopping.is_set()

    async def run(self) -> None:
        """Consume until SIGTERM / SIGINT or `stop()`, then stop gracefully and close the queues.

        Raises:
            ExceptionGroup: A consumer crashed; the others were stopped first.
        """
        async with self:
            await self.wait()

    def start(self) -> None:
        """Start every consumer in the background on the running event loop."""
        if self._running is not None:
            raise InvalidOption("this App is already running")
        queues = self.queues  # unknown names fail here, before anything starts
        self._stopping = asyncio.Event()
        self._running = asyncio.create_task(
            self._consume(queues, self._stopping), name="corequeue app"
        )

    def stop(self) -> None:
        """Ask every consumer to stop gracefully (call it from the app's event loop)."""
        if self._stopping is not None:
            self._stopping.set()

    async def wait(self) -> None:
        """Return when every consumer has stopped; re-raise a consumer's crash."""
        if self._running is not None:
            await asyncio.shield(self._running)

    async def __aenter__(self) -> App:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        try:
            await self.wait()
        finally:
            self._running = None
            await self._close()

    async def _consume(self, queues: list[Queue], stopping: asyncio.Event) -> None:
        with self._signals():
            async with asyncio.TaskGroup() as group:
                consumers = [
                    group.create_task(
                        queue.consume(handle_signals=False), name=f"consume {queue.name}"
                    )
                    for queue in queues
                ]
                await stopping.wait()
                # Each consumer turns cancellation into its graceful shutdown.
                for consumer in consumers:
                    consumer.cancel()

    async def _close(self) -> None:
        await self.factory.close()
        for item in self._names or ():
            if isinstance(item, Queue):
                await item.close()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """Turn SIGTERM and SIGINT into `stop()` while the consumers run (main thread only)."""
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping:
            _log.warning("%s: already stopping; in-flight jobs have their grace period", sig.name)
            return
        _log.info("%s: stopping gracefully", sig.name)
        self.stop()
