"""FastAPI integration: the app owns its queues, hands them to endpoints, shows the dashboard.

Needs the `fastapi` extra (`pip install 'corequeue[fastapi]'`); the dashboard also needs
`web`.

    from typing import Annotated
    from fastapi import Depends, FastAPI
    import corequeue as cq
    from corequeue.contrib.fastapi import Queues

    queues = Queues(cq.QueueFactory(cq.load_config()))
    app = FastAPI(lifespan=queues.lifespan)
    app.mount("/queues", queues.dashboard())

    @app.post("/signup")
    async def signup(emails: Annotated[cq.Queue, Depends(queues.queue("emails"))]) -> None:
        await emails.dispatch(SendEmail("ada@example.com"))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from corequeue.factory import App, QueueFactory
from corequeue.queue import Queue


class Queues:
    """The queues of a FastAPI (or any Starlette) app: opened and closed with the app.

    Args:
        factory: Where the queues come from (default: the built-in configuration).
        consume: Queues whose consumers run inside the web app's process while it runs, by
            name (`True`: every configured queue). Default: none; run workers apart with
            `corequeue worker`, which is what production usually wants.

    Example:
        >>> queues = Queues(cq.QueueFactory(cq.load_config()), consume=["emails"])  # doctest: +SKIP
        >>> app = FastAPI(lifespan=queues.lifespan)  # doctest: +SKIP
    """

    def __init__(
        self, factory: QueueFactory | None = None, *, consume: Iterable[str] | bool = False
    ) -> None:
        self.factory = factory or QueueFactory()
        self._consume: tuple[str, ...] | None
        if consume is True:
            self._consume = None
        elif consume is False:
            self._consume = ()
        else:
            self._consume = tuple(consume)
        self._app: App | None = None

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Open the queues when the app starts and close them when it stops.

        Makes every configured queue at start-up (so a configuration mistake stops the app
        from starting, not its first request), starts the consumers asked for, and at
        shutdown stops them gracefully and closes every queue's driver. Give it as
        `FastAPI(lifespan=queues.lifespan)`, or enter it from a lifespan of your own:
        `async with queues.lifespan(app): yield`.
        """
        for name in self.factory.names:
            self.factory.make(name)
        if self._consume == ():
            try:
                yield
            finally:
                await self.factory.close()
            return
        self._app = App(self.factory, queues=self._consume, handle_signals=False)
        try:
            async with self._app:
                yield
        finally:
            self._app = None

    def queue(self, name: str = "default") -> Callable[[], Queue]:
        """Return a dependency that gives an endpoint the queue called `name`.

        Use it as `Depends(queues.queue("emails"))`. An unknown name raises InvalidOption
        here, when the app is defined, not at the first request.

        Example:
            >>> @app.post("/signup")  # doctest: +SKIP
            ... async def signup(emails: Annotated[cq.Queue, Depends(queues.queue("emails"))]):
            ...     await emails.dispatch(SendEmail("ada@example.com"))
        """
        self.factory.settings(name)  # refuses an unknown name now

        def get_queue() -> Queue:
            return self.factory.make(name)

        get_queue.__name__ = f"queue_{name}"
        return get_queue

    def dashboard(self, **options: Any) -> Any:
        """Return the dashboard of every queue, an ASGI app to mount: `app.mount("/queues", ...)`.

        `options` go to `corequeue.web.create_app` (token, basic_auth, allowed_hosts, ...).
        Needs the `web` extra.
        """
        from corequeue.web import create_app

        queues = {name: self.factory.make(name) for name in self.factory.names}
        return create_app(queues, **options)
