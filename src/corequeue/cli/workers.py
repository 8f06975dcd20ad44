"""`corequeue workers`: the workers consuming each queue, from their heartbeats in the store.

A worker beats once per renewal period (a third of its queue's lease); the command lists those
that beat within a lease, wherever they run.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from corequeue.cli.common import (
    Output,
    admin_factory,
    chosen_queues,
    config_option,
    each_queue,
    json_option,
    queue_option,
    read_config,
    titled_table,
)
from corequeue.config import Config
from corequeue.drivers.base import WorkerInfo
from corequeue.queue import Queue


@click.command(name="workers")
@config_option
@queue_option("Queue whose workers to list; repeatable. Default: every configured queue.")
@json_option
def workers(config_path: Path | None, queues: tuple[str, ...], as_json: bool) -> int:
    """List the live workers of each queue: host, pid, when started, last beat, jobs running."""
    config = read_config(config_path)
    names = chosen_queues(config, queues, all_by_default=True)
    found = asyncio.run(each_queue(admin_factory(config), names, Queue.workers))
    output = Output(as_json)
    if as_json:
        output.json(
            {name: [document(worker) for worker in by_queue] for name, by_queue in found.items()}
        )
        return 0
    output.console.print(_table(config, found))
    return 0


def document(worker: WorkerInfo) -> dict[str, Any]:
    """Return a worker as `--json` (and the dashboard's API) shows it."""
    return {
        "id": worker.id,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "started_at": worker.started_at.isoformat(),
        "last_seen": worker.last_seen.isoformat(),
        "running": worker.running,
    }


def _table(config: Config, found: dict[str, list[WorkerInfo]]) -> Table:
    table = titled_table(config)
    for column in ("queue", "worker", "host", "pid", "started", "last seen", "running"):
        table.add_column(column, overflow="fold")
    now = datetime.now(UTC)
    for queue, by_queue in found.items():
        if not by_queue:
            table.add_row(Text(queue), Text("no live workers", style="dim"))
        for worker in by_queue:
            ago = max((now - worker.last_seen).total_seconds(), 0.0)
            cells = [
                queue,
                worker.id,
                worker.hostname,
                str(worker.pid),
                f"{worker.started_at:%Y-%m-%d %H:%M:%S %Z}",
                f"{ago:.1f}s ago",
                str(worker.running),
            ]
            table.add_row(*(Text(cell) for cell in cells))
    return table
