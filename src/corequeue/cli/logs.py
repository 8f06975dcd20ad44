"""Logging for the worker: readable rich output on a terminal, plain or JSON lines otherwise.

Records about one job carry `job_id`, `job_type` and `attempt` (passed as `extra=` by the
consumer); every format shows them. Payload bodies are never logged.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Final

from rich.console import Console
from rich.logging import RichHandler

JOB_FIELDS: Final = ("job_id", "job_type", "attempt")


class JobContext(logging.Filter):
    """Sets `record.job` to ` [job ID type TYPE attempt N]` on records about one job, else ''.

    The id is left out of the suffix when the message already names it, so lines stay short.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the `job` attribute; never drops a record."""
        job_id = getattr(record, "job_id", None)
        if job_id is None:
            record.job = ""
            return True
        job_type = getattr(record, "job_type", "?")
        attempt = getattr(record, "attempt", "?")
        said = str(job_id) in record.getMessage()
        record.job = (
            f" [type {job_type} attempt {attempt}]"
            if said
            else f" [job {job_id} type {job_type} attempt {attempt}]"
        )
        return True


class JsonLines(logging.Formatter):
    """Formats each record as one JSON object: time, level, logger, message and job fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a line of JSON."""
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in JOB_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, *, as_json: bool, console: Console | None = None) -> None:
    """Send every log record at `level` or above to stderr, in the form that suits it.

    Args:
        level: debug, info, warning, error or critical.
        as_json: Write JSON lines (for log collectors) instead of text.
        console: The rich console of a terminal (shared with the live status), if any.
    """
    handler: logging.Handler
    if as_json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
    elif console is not None:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=True)
        handler.setFormatter(logging.Formatter("%(message)s%(job)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s%(job)s")
        )
    handler.addFilter(JobContext())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
