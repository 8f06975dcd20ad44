"""Calls into user code that must never stop a worker: metrics observers and gauges.

A metrics exporter that is down raises on every call; the worker keeps running, and the failure
is logged with its traceback once, then at most once a minute with how often it happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

_LOG_EVERY_SECONDS = 60.0

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class Guard:
    """Runs callbacks of user code, logging (not raising) what they raise.

    Example:
        >>> guard = Guard(logging.getLogger("corequeue"), "metrics observer")
        >>> guard.call(print, "observed")
        observed
    """

    def __init__(self, log: Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._failures = 0
        self._logged_at: float | None = None

    @property
    def failures(self) -> int:
        """How many calls raised so far."""
        return self._failures

    def call(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call `callback`; an Exception it raises is logged and swallowed."""
        try:
            callback(*args, **kwargs)
        except Exception:
            self._failures += 1
            now = time.monotonic()
            if self._logged_at is not None and now - self._logged_at < _LOG_EVERY_SECONDS:
                return
            self._logged_at = now
            self._log.exception(
                "%s failed (%d failures so far); the worker carries on",
                self._what,
                self._failures,
            )
