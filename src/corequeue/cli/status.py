"""The worker's live status: a rich table on a terminal, a line per change otherwise.

Each row shows a queue's channels (read from its driver every second) and the attempts this
worker finished: processed, retried, failed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from corequeue.cli.common import CHANNELS, Output
from corequeue.metrics import JobCounts
from corequeue.queue import Queue

REFRESH_SECONDS = 1.0
OUTCOMES = ("processed", "retried", "failed")


class Status:
    """Reports what the worker does, for people (rich) or scripts (`--json` lines on stdout)."""

    def __init__(self, output: Output, terminal: Console | None = None) -> None:
        """Show a live table on `terminal` (default: stderr when it is a terminal, not --json)."""
        self.output = output
        interactive = not output.as_json and sys.stderr.isatty()
        self.live_console = terminal or (
            Console(stderr=True, highlight=False) if interactive else None
        )
        self._live: Live | None = None
        self._started = False
        self._last: dict[str, _Row] = {}

    def announce(self, text: str, port: int | None = None) -> None:
        """Report a fact about the worker, such as the metrics address and its port."""
        fields: dict[str, Any] = {"event": "announce", "message": text}
        if port is not None:
            fields["port"] = port
        self._emit(fields, text)

    def started(self, queues: dict[str, str]) -> None:
        """Report the queues being consumed and where they keep their jobs."""
        text = "; ".join(f"{name} ({store})" for name, store in queues.items())
        self._emit({"event": "started", "queues": queues}, f"worker started: {text}")
        self._started = True
        if self.live_console is not None:
            self._live = Live(console=self.live_console, refresh_per_second=2)
            self._live.start()

    def stopped(self) -> None:
        """Report that every consumer has stopped (if they ever started)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._started:
            self._started = False
            self._emit({"event": "stopped"}, "worker stopped")

    async def follow(self, queues: Sequence[Queue], counts: JobCounts) -> None:
        """Refresh the status every second until cancelled."""
        while True:
            await self.refresh(queues, counts)
            await asyncio.sleep(REFRESH_SECONDS)

    async def refresh(self, queues: Sequence[Queue], counts: JobCounts) -> None:
        """Read the channels of every queue once and show them with this worker's counts."""
        rows = {queue.name: await _row(queue, counts) for queue in queues}
        if self._live is not None:
            self._live.update(_table(rows), refresh=True)
        else:
            self._print_changes(rows)

    def _print_changes(self, rows: dict[str, _Row]) -> None:
        for name, row in rows.items():
            if self._last.get(name) == row:
                continue
            self._last[name] = row
            channels = (
                ", ".join(f"{channel} {count}" for channel, count in row.channels.items())
                if row.channels is not None
                else "store unavailable"
            )
            done = ", ".join(f"{outcome} {count}" for outcome, count in row.done.items())
            fields = {"channels": row.channels, "worker": row.done}
            self._emit(
                {"event": "status", "queue": name, **fields},
                f"{name}: {channels} | this worker: {done}",
            )

    def _emit(self, fields: dict[str, Any], text: str) -> None:
        if self.output.as_json:
            self.output.json(fields)
        elif self.live_console is not None:
            self.live_console.print(text, markup=False, soft_wrap=True)
        else:
            self.output.console.print(text, markup=False, soft_wrap=True)
        sys.stdout.flush()


@dataclass(frozen=True, slots=True)
class _Row:
    channels: dict[str, int] | None  # None: the store cannot be read right now
    done: dict[str, int]


async def _row(queue: Queue, counts: JobCounts) -> _Row:
    try:
        channels: dict[str, int] | None = (await queue.info()).as_dict()
    except Exception:  # the store is down: say so, keep showing this worker's own counts
        channels = None
    return _Row(channels, {outcome: count for outcome, count in counts.of(queue.name).items()})


def _table(rows: dict[str, _Row]) -> Table:
    table = Table(title="corequeue worker (Ctrl-C stops gracefully)", title_justify="left")
    table.add_column("queue")
    for channel in CHANNELS:
        table.add_column(channel, justify="right")
    for outcome in OUTCOMES:
        table.add_column(f"{outcome} here", justify="right", style="dim")
    for name, row in rows.items():
        channels = [str((row.channels or {}).get(c, "?")) for c in CHANNELS]
        done = (str(row.done[outcome]) for outcome in OUTCOMES)
        table.add_row(Text(name), *channels, *done)  # a queue name is not markup
    return table
