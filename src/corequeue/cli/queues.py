"""`corequeue queue info|flush|reload|pause|resume|periodic`: the queue commands.

info, flush and reload are the Go module's, with its flags; pause and resume act on the flag
the store keeps, so they reach every worker of the queue.

`periodic` lives in its own module (`corequeue.cli.periodic`) and joins the group here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from corequeue.cli.common import (
    CHANNELS,
    DEFAULT_CHANNELS,
    Failed,
    Output,
    Refused,
    admin_factory,
    channel_option,
    channels_option,
    chosen_queues,
    config_option,
    each_queue,
    jobs,
    json_option,
    queue_option,
    read_config,
    titled_table,
)
from corequeue.cli.periodic import periodic
from corequeue.config import Config
from corequeue.drivers.base import QueueInfo, reloadable
from corequeue.errors import InvalidOption
from corequeue.factory import QueueFactory
from corequeue.queue import Queue


@click.group(name="queue")
def queue_group() -> None:
    """Inspect and repair queues: count jobs, flush channels, reload failed jobs, schedules."""


queue_group.add_command(periodic)


@queue_group.command()
@config_option
@queue_option("Queue to show; repeatable. Default: every configured queue.")
@channels_option("Channel to show; repeatable. Default: all of them.")
@click.option(
    "--throughput",
    "minutes",
    type=click.IntRange(1, 24 * 60),
    default=None,
    metavar="MINUTES",
    help="Show instead what every worker finished in the last MINUTES, by outcome.",
)
@json_option
def info(
    config_path: Path | None,
    queues: tuple[str, ...],
    channels: tuple[str, ...],
    minutes: int | None,
    as_json: bool,
) -> int:
    """Show how many jobs each channel of each queue holds (or, with --throughput, how many
    attempts the workers finished lately)."""
    config = read_config(config_path)
    if minutes is not None:
        return _throughput(config, queues, minutes, as_json)
    names = chosen_queues(config, queues, all_by_default=True)
    shown = [channel for channel in CHANNELS if channel in channels] if channels else CHANNELS
    factory = admin_factory(config)
    states = asyncio.run(each_queue(factory, names, _state))
    counts = {
        name: {channel: state.info.as_dict()[channel] for channel in shown}
        for name, state in states.items()
    }
    output = Output(as_json)
    if as_json:
        output.json(counts)
        return 0
    table = titled_table(config)
    table.add_column("queue")
    table.add_column("store", overflow="fold")
    for channel in shown:
        table.add_column(channel, justify="right")
    table.add_column("state")
    table.add_column("limits", overflow="fold")
    for name, by_channel in counts.items():
        cells = [str(count) for count in by_channel.values()]
        state = states[name]
        limits = ", ".join(f"{key} {value}" for key, value in state.limits.items()) or "none"
        table.add_row(  # names and limits as text, never markup
            Text(name), Text(factory.describe(name)), *cells, state.state, Text(limits)
        )
    output.console.print(table)
    return 0


def _throughput(config: Config, queues: tuple[str, ...], minutes: int, as_json: bool) -> int:
    """Print the attempts every worker finished in the last `minutes`, per queue."""
    names = chosen_queues(config, queues, all_by_default=True)
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    read = functools.partial(_totals_since, since=since)
    totals = asyncio.run(each_queue(admin_factory(config), names, read))
    output = Output(as_json)
    if as_json:
        output.json(totals)
        return 0
    table = Table(
        title=Text(f"corequeue: {config.source}: the last {minutes} min"), title_justify="left"
    )
    for column in ("queue", "processed", "retried", "failed", "per minute"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for name, by_outcome in totals.items():
        rate = sum(by_outcome.values()) / minutes
        cells = [str(by_outcome[outcome]) for outcome in ("processed", "retried", "failed")]
        table.add_row(Text(name), *cells, f"{rate:.1f}")
    output.console.print(table)
    return 0


async def _totals_since(queue: Queue, since: datetime) -> dict[str, int]:
    counted = await queue.driver.throughput(since)
    return {
        "processed": sum(count.processed for count in counted),
        "retried": sum(count.retried for count in counted),
        "failed": sum(count.failed for count in counted),
    }


@queue_group.command()
@config_option
@queue_option("Queue to flush; repeatable. Default: default.")
@channel_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def flush(
    config_path: Path | None,
    queues: tuple[str, ...],
    channels: tuple[str, ...],
    yes: bool,
    as_json: bool,
) -> int:
    """Delete every job of the chosen channels (default: timeout and failed).

    Asks for confirmation unless --yes; without a terminal to ask on, nothing is flushed.
    """
    config = read_config(config_path)
    names = chosen_queues(config, queues, all_by_default=False)
    channels = channels or DEFAULT_CHANNELS
    output = Output(as_json)
    flushed = asyncio.run(_flush(admin_factory(config), names, channels, yes))
    if as_json:
        output.json(flushed)
    for name, by_channel in flushed.items():
        done = ", ".join(f"{channel} ({jobs(count)})" for channel, count in by_channel.items())
        output.say(f"{name}: flushed {done}")
    return 0


@queue_group.command()
@config_option
@queue_option("Queue to reload; repeatable. Default: default.")
@channel_option
@json_option
def reload(
    config_path: Path | None, queues: tuple[str, ...], channels: tuple[str, ...], as_json: bool
) -> int:
    """Move the jobs of failed and timeout back to waiting, to run again.

    A reload is not a retry: it does not reset the attempts made and is not limited by them.
    """
    channels = channels or DEFAULT_CHANNELS
    for channel in channels:
        try:
            reloadable(channel)
        except InvalidOption as exc:
            raise Refused(str(exc)) from None
    config = read_config(config_path)
    names = chosen_queues(config, queues, all_by_default=False)
    reload_channels = functools.partial(_reload, channels=channels)
    moved = asyncio.run(each_queue(admin_factory(config), names, reload_channels))
    output = Output(as_json)
    if as_json:
        output.json(moved)
    for name, by_channel in moved.items():
        detail = ", ".join(f"{channel} {count}" for channel, count in by_channel.items())
        output.say(f"{name}: moved {jobs(sum(by_channel.values()))} back to waiting ({detail})")
    return 0


@queue_group.command()
@config_option
@queue_option("Queue to pause; repeatable. Default: default.")
@json_option
def pause(config_path: Path | None, queues: tuple[str, ...], as_json: bool) -> int:
    """Stop every worker from starting jobs of the queue; dispatches are still accepted.

    Running jobs finish. The flag lives in the store: it holds until `queue resume`.
    """
    return _set_paused(config_path, queues, as_json, paused=True)


@queue_group.command()
@config_option
@queue_option("Queue to resume; repeatable. Default: default.")
@json_option
def resume(config_path: Path | None, queues: tuple[str, ...], as_json: bool) -> int:
    """Let workers start jobs of a paused queue again."""
    return _set_paused(config_path, queues, as_json, paused=False)


def _set_paused(
    config_path: Path | None, queues: tuple[str, ...], as_json: bool, *, paused: bool
) -> int:
    config = read_config(config_path)
    names = chosen_queues(config, queues, all_by_default=False)
    switch = functools.partial(_pause_or_resume, paused=paused)
    states = asyncio.run(each_queue(admin_factory(config), names, switch))
    output = Output(as_json)
    if as_json:
        output.json({name: {"paused": state} for name, state in states.items()})
        return 0
    for name, state in states.items():
        output.say(f"{name}: {'paused' if state else 'running'}")
    return 0


async def _pause_or_resume(queue: Queue, paused: bool) -> bool:
    await (queue.pause() if paused else queue.resume())
    return await queue.is_paused()


@dataclass(frozen=True, slots=True)
class _QueueState:
    """What `queue info` shows of one queue: its counts, whether it is paused, its limits."""

    info: QueueInfo
    state: str  # "paused", "running", or "?" for a store that cannot say
    limits: dict[str, str | int]


async def _state(queue: Queue) -> _QueueState:
    state = "?"  # a driver of one's own may not know pausing
    if callable(getattr(queue.driver, "is_paused", None)):
        with contextlib.suppress(NotImplementedError):
            state = "paused" if await queue.is_paused() else "running"
    return _QueueState(await queue.info(), state, queue.limits.describe())


async def _flush(
    factory: QueueFactory, names: list[str], channels: tuple[str, ...], yes: bool
) -> dict[str, dict[str, int]]:
    try:
        before = {name: (await factory.make(name).info()).as_dict() for name in names}
        counts = {name: {c: before[name][c] for c in channels} for name in names}
        if not yes:
            await asyncio.to_thread(_confirm_flush, counts)
        for name in names:
            for channel in channels:
                await factory.make(name).driver.flush(channel)
        return counts
    finally:
        await factory.close()


def _confirm_flush(counts: dict[str, dict[str, int]]) -> None:
    what = "; ".join(
        f"queue {name}: " + ", ".join(f"{channel} ({jobs(n)})" for channel, n in by.items())
        for name, by in counts.items()
    )
    if not sys.stdin.isatty():
        raise Failed(f"not flushed: confirm with --yes to delete {what}")
    if not click.confirm(f"Delete every job of {what}?", default=False, err=True):
        raise Failed("not flushed: not confirmed")


async def _reload(queue: Queue, channels: tuple[str, ...]) -> dict[str, int]:
    return {channel: await queue.driver.reload(channel) for channel in channels}
