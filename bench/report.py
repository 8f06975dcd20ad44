"""The benchmark's output: one rich table of corequeue and its peers side by side, and JSON."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

LABELS = {
    "redis": "corequeue Redis",
    "sqlite": "corequeue SQLite",
    "postgres": "corequeue PostgreSQL",
    "in_process": "corequeue InProcess (not durable)",
}


def write_json(results: dict[str, Any], folder: Path) -> Path:
    """Write `results` to a new timestamped file in `folder`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / time.strftime("bench-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def print_table(results: dict[str, Any]) -> None:
    """Print every figure, with the Redis drain as a multiple of each peer's."""
    redis = next((row for row in results["corequeue"] if row["driver"] == "redis"), None)
    reference = redis["drain"] if redis else math.nan
    table = Table(title=_title(results))
    for column in ("library (worker)", "enqueue/s", "dispatch_many/s", "drain/s (1 proc)"):
        table.add_column(column, justify="left" if column.startswith("library") else "right")
    for column in ("late p50 ms", "p99 ms", "max ms", "early", "corequeue Redis x"):
        table.add_column(column, justify="right")
    for row in results["corequeue"]:
        table.add_row(*_corequeue_cells(row))
    for peer in results["peers"]:
        table.add_row(*_peer_cells(peer, reference))
    console = Console(width=None if sys.stdout.isatty() else 170)
    console.print(table)
    if redis:
        scaling = [f"{p}: {redis[f'drain_{p}p']:,.0f}" for p in _processes(redis)]
        console.print(f"Redis drain by worker processes: 1: {redis['drain']:,.0f}; ", end="")
        console.print("; ".join(scaling) + " jobs/s")


def _title(results: dict[str, Any]) -> str:
    machine, settings = results["machine"], results["settings"]
    return (
        f"{settings['jobs']:,} jobs, no-op async handler, small dict payload; "
        f"{machine['cpus']} CPUs, Python {machine['python']}, redis-server "
        f"{machine['redis_server']}; lateness: {settings['lateness_samples']} jobs deferred "
        f"{settings['defer_ms']} ms (early: started before the exact due instant); "
        f"corequeue parallelism {settings['parallelism']}"
    )


def _corequeue_cells(row: dict[str, Any]) -> list[str]:
    late = row["lateness"]
    return [
        LABELS[row["driver"]],
        _rate(row["enqueue"]),
        _rate(row["enqueue_many"]),
        _rate(row["drain"]),
        _ms(late["p50"]),
        _ms(late["p99"]),
        _ms(late["max"]),
        _early(late),
        "",
    ]


def _peer_cells(peer: dict[str, Any], reference: float) -> list[str]:
    if "error" in peer:
        return [f"{peer['peer']}: n/a ({peer['error']})", "", "", "", "", "", "", "", ""]
    late = peer.get("lateness", {})
    drain = peer.get("drain", math.nan)
    ratio = reference / drain if drain and not math.isnan(drain) else math.nan
    return [
        f"{peer['peer']} ({peer.get('worker', '')})",
        _rate(peer.get("enqueue", math.nan)),
        _rate(peer.get("enqueue_many", math.nan)),
        _rate(drain),
        _ms(late.get("p50", math.nan)),
        _ms(late.get("p99", math.nan)),
        _ms(late.get("max", math.nan)),
        _early(late),
        "" if math.isnan(ratio) else f"{ratio:.1f}x",
    ]


def _processes(row: dict[str, Any]) -> list[int]:
    return sorted(int(key[6:-1]) for key in row if key.startswith("drain_") and key.endswith("p"))


def _early(late: dict[str, Any]) -> str:
    """Return how many deferred jobs started before their exact due instant, flagged if any."""
    early = late.get("early")
    if early is None:
        return "n/a"
    samples = late.get("samples")
    of = f" of {samples:.0f}" if samples else ""
    return f"[bold red]{early:.0f}{of}[/]" if early else f"0{of}"


def _rate(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.0f}"


def _ms(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.1f}"
