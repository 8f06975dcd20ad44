"""`corequeue migrate`: upgrade the stored layout of postgres and redis queues."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from corequeue.cli.common import (
    Output,
    admin_factory,
    chosen_queues,
    config_option,
    json_option,
    queue_option,
    read_config,
)
from corequeue.config import Config
from corequeue.factory import QueueFactory


@click.command()
@config_option
@queue_option("Queue to migrate; repeatable. Default: every configured queue.")
@json_option
def migrate(config_path: Path | None, queues: tuple[str, ...], as_json: bool) -> int:
    """Bring the PostgreSQL schema or Redis store layout of queues to this release's version.

    Safe to run again and from several machines at once; queues on other drivers need nothing.
    """
    config = read_config(config_path)
    names = chosen_queues(config, queues, all_by_default=True)
    results = asyncio.run(_migrate(config, admin_factory(config), names))
    output = Output(as_json)
    if as_json:
        output.json(results)
        return 0
    for name, result in results.items():
        kind = "store layout" if result["driver"] == "redis" else "schema"
        if result["driver"] not in _MIGRATING:
            output.say(f"{name}: uses {result['driver']}, nothing to migrate")
        elif result["applied"]:
            versions = ", ".join(str(version) for version in result["applied"])
            output.say(f"{name}: applied {kind} versions {versions} ({result['store']})")
        else:
            output.say(f"{name}: {kind} already up to date ({result['store']})")
    return 0


async def _migrate(
    config: Config, factory: QueueFactory, names: list[str]
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            settings = config.queue(name)
            result: dict[str, Any] = {"driver": settings.driver, "store": settings.describe()}
            if settings.driver in _MIGRATING:
                driver: Any = factory.make(name).driver
                result["applied"] = list(await driver.migrate())
            results[name] = result
        return results
    finally:
        await factory.close()


_MIGRATING = ("postgres", "redis")  # their drivers have `migrate() -> list[int]`
