"""The corequeue dashboard: see and operate queues from a browser, and a JSON API behind it.

Needs the `web` extra (`pip install 'corequeue[web]'`): Starlette, Jinja2 and uvicorn.

Example:
    >>> from corequeue.web import create_app
    >>> app = create_app({"default": queue}, token="s3cret")  # doctest: +SKIP
"""

from corequeue.web.activity import ActivityRecorder
from corequeue.web.app import create_app

__all__ = ["ActivityRecorder", "create_app"]
