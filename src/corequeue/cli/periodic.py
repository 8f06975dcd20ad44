"""`corequeue queue periodic`: each queue's periodic schedules, and forgetting a stored one.

The schedules shown are those the configuration declares (`queue.<name>.periodic`), with their
next run and the last run the store recorded, and every other name the store holds a last slot
for: a schedule declared in code (`queue.periodic(...)`), which this command cannot see, or one
no worker declares any more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from corequeue.cli.common import (
    Failed,
    Output,
    Refused,
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
from corequeue.errors import InvalidOption
from corequeue.factory import QueueFactory
from corequeue.periodic import MAX_NAME_CHARS, PeriodicInfo, slot_job_id
from corequeue.periodic.registry import check_name
from corequeue.queue import Queue

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
IN_CODE = "declared in code"
"""What the table shows as the next run of a schedule only the store knows."""


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One schedule of one queue as this command shows it.

    Attributes:
        name: The schedule's name.
        info: What the configuration declares, with the next and last run; None for a name
            only the store knows (declared in code, or by no worker any more).
        last_slot_ms: The last slot the store recorded as enqueued; None if none.
    """

    name: str
    info: PeriodicInfo | None
    last_slot_ms: int | None

    def document(self) -> dict[str, Any]:
        """Return the row as `--json` prints it."""
        info = self.info
        schedule = None if info is None else info.schedule
        return {
            "name": self.name,
            "declared_in": "code" if info is None else "configuration",
            "schedule": schedule if isinstance(schedule, str) else None,
            "interval_seconds": (
                schedule.total_seconds() if isinstance(schedule, timedelta) else None
            ),
            "tz": None if info is None else info.tz,
            "misfire": None if info is None else info.misfire,
            "next_run": _iso(None if info is None else info.next_run),
            "last_run": _iso(self.last_run),
            "last_job_id": None if self.last_slot_ms is None else self.last_job_id,
        }

    @property
    def last_run(self) -> datetime | None:
        """The last slot enqueued, in the schedule's zone (UTC for a name only stored)."""
        if self.info is not None:
            return self.info.last_run
        return None if self.last_slot_ms is None else _instant(self.last_slot_ms)

    @property
    def last_job_id(self) -> str:
        """The id of the last slot's job, `periodic:<name>:<slot ms>`."""
        return slot_job_id(self.name, self.last_slot_ms or 0)


@click.command(name="periodic")
@config_option
@queue_option(
    "Queue to show; repeatable. Default: every configured queue (with --forget: default)."
)
@click.option(
    "--forget",
    "forget",
    metavar="NAME",
    help="Delete the stored last slot of schedule NAME (only for a schedule no worker declares).",
)
@json_option
def periodic(
    config_path: Path | None, queues: tuple[str, ...], forget: str | None, as_json: bool
) -> int:
    """List the periodic schedules of each queue: when they run next and ran last.

    Shows the schedules the configuration declares and every other schedule the store knows
    (declared in code). With --forget NAME, deletes the stored record of that schedule instead.
    """
    if forget is not None:
        _check_forget_name(forget)
    config = read_config(config_path)
    names = chosen_queues(config, queues, all_by_default=forget is None)
    factory = admin_factory(config)
    output = Output(as_json)
    if forget is not None:
        found = asyncio.run(_forget(factory, names, forget, output))
        return _report_forgotten(output, forget, found)
    rows = asyncio.run(each_queue(factory, names, schedule_rows))
    if as_json:
        output.json({name: [row.document() for row in by_queue] for name, by_queue in rows.items()})
        return 0
    output.console.print(_table(config, rows))
    return 0


async def schedule_rows(queue: Queue) -> list[ScheduleRow]:
    """Return the schedules `queue` declares, then every other name its store knows, by name."""
    declared = await queue.periodic_schedules()
    stored = await queue.driver.schedule_slots()
    rows = [ScheduleRow(info.name, info, _slot_ms(info.last_run)) for info in declared]
    known = {info.name for info in declared}
    rows += [
        ScheduleRow(name, None, slot_ms)
        for name, slot_ms in sorted(stored.items())
        if name not in known
    ]
    return rows


def _table(config: Config, rows: dict[str, list[ScheduleRow]]) -> Table:
    table = titled_table(config)
    for column in ("queue", "schedule", "when", "tz", "misfire", "next run", "last run"):
        table.add_column(column, overflow="fold")
    for queue, by_queue in rows.items():
        if not by_queue:
            table.add_row(Text(queue), Text("no schedules", style="dim"))
        for row in by_queue:
            table.add_row(*(Text(cell) for cell in _cells(queue, row)))  # names: not markup
    return table


def _cells(queue: str, row: ScheduleRow) -> list[str]:
    info = row.info
    if info is None:
        return [queue, row.name, "", "", "", IN_CODE, _shown(row.last_run)]
    when = info.schedule if isinstance(info.schedule, str) else f"every {info.schedule}"
    next_run = _shown(info.next_run) or "never"
    return [queue, row.name, when, info.tz, info.misfire, next_run, _shown(row.last_run)]


async def _forget(
    factory: QueueFactory, names: list[str], schedule: str, output: Output
) -> dict[str, bool]:
    """Forget `schedule` in every queue of `names`; return, by queue, whether it was stored."""
    try:
        found: dict[str, bool] = {}
        for name in names:
            queue = factory.make(name)
            if schedule in {info.name for info in await queue.periodic_schedules()}:
                output.warn(
                    f"warning: the configuration of queue {name} declares schedule {schedule!r}: "
                    "its workers keep running it; remove it from the configuration too"
                )
            found[name] = await queue.driver.forget_schedule(schedule)
        return found
    finally:
        await factory.close()


def _report_forgotten(output: Output, schedule: str, found: dict[str, bool]) -> int:
    if not any(found.values()):
        where = ", ".join(found)
        raise Failed(f"no stored schedule {schedule!r} in queue {where}: nothing forgotten")
    output.warn(
        f"warning: forgot schedule {schedule!r}: a worker that still declares it starts it "
        "afresh and may enqueue its latest slot again; forget only schedules no worker declares"
    )
    if output.as_json:
        output.json({name: {"forgot": schedule, "found": was} for name, was in found.items()})
    for name, was in found.items():
        done = "forgot" if was else "had no stored"
        output.say(f"{name}: {done} schedule {schedule!r}")
    return 0


def _check_forget_name(name: str) -> None:
    try:
        check_name(name)
    except InvalidOption:
        raise Refused(
            f"--forget expects a schedule name of 1 to {MAX_NAME_CHARS} characters without ':' "
            f"or NUL, got {name!r}"
        ) from None


def _slot_ms(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - _EPOCH) // timedelta(milliseconds=1)


def _instant(slot_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=slot_ms)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _shown(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S %Z}"
