"""The benchmark's output: corequeue and its peers side by side in one report, and JSON.

The main table has one row per library (and the raw redis-py reference under corequeue Redis);
below it come the one-call-at-a-time comparison, the bursts, and with `--scale` the cost at
scale. A workload that failed shows n/a, and its error is listed under the table.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

LABELS = {
    "redis": "corequeue Redis",
    "sqlite": "corequeue SQLite",
    "postgres": "corequeue PostgreSQL",
    "in_process": "corequeue InProcess (not durable)",
}
MAIN_CAPTION = (
    "enqueue/s: one awaited dispatch at a time (a peer: its one-call enqueue); sync/s: "
    "dispatch_sync one at a time from sync code (a peer: its enqueue when that is a sync call); "
    "many/s: dispatch_many; I/O drain/s: the handler makes one Redis INCR with its own client"
)
MAIN_COLUMNS = (
    "enqueue/s",
    "sync/s",
    "many/s",
    "drain/s",
    "I/O drain/s",
    "late p50 ms",
    "p99 ms",
    "max ms",
    "early",
    "Redis drain x",
)
BURST_COLUMNS = ("jobs/s", "p50 ms", "p99 ms", "max ms", "failed", "stored")
SCALE_COLUMNS = (
    "RSS MiB at 1/10",
    "RSS MiB at all",
    "growth",
    "drain/s",
    "used_memory: drained - before",
    "drain/s of 1/10",
    "same, all delayed beside",
    "beside / alone",
)
NAN = math.nan


def write_json(results: dict[str, Any], folder: Path) -> Path:
    """Write `results` to a new timestamped file in `folder`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / time.strftime("bench-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def print_report(results: dict[str, Any]) -> None:
    """Print the main table, then each section measured in this run, then any failures."""
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(_main_table(results))
    redis = next((row for row in results["corequeue"] if row["driver"] == "redis"), None)
    if redis:
        console.print(_scaling_line(redis))
        console.print(_one_call_line(redis, results["peers"]))
    for row in results["corequeue"]:
        if "drain_keep_results" in row:
            console.print(_kept_results_line(row))
    if any("burst" in row for row in results["corequeue"]):
        console.print(_burst_table(results["corequeue"]))
    if any("scale" in row for row in results["corequeue"]):
        console.print(_memory_table(results))
        console.print(_scale_table(results))
    for line in failures(results):
        console.print(f"[red]failed:[/] {escape(line)}")


def figure(figures: Any, *path: str) -> Any:
    """Return the figure at `path`, or NaN when it is missing or its workload failed."""
    for key in path:
        if not isinstance(figures, dict) or "error" in figures or key not in figures:
            return NAN
        figures = figures[key]
    return NAN if isinstance(figures, dict) and "error" in figures else figures


def failures(results: dict[str, Any]) -> list[str]:
    """Return one line per failed workload: who, which workload, the error."""
    lines = []
    for row in results["corequeue"]:
        lines += _errors_in(LABELS[row["driver"]], row)
    for peer in results["peers"] + results.get("peer_memory", []):
        lines += _errors_in(peer["peer"], peer)
    return lines


def _errors_in(label: str, figures: dict[str, Any]) -> list[str]:
    if "error" in figures:
        return [f"{label}: {figures['error']}"]
    lines = []
    for name, value in figures.items():
        if isinstance(value, dict):
            lines += _errors_in(f"{label}, {name}", value)
    return lines


# --- the main table ----------------------------------------------------------------------------


def _main_table(results: dict[str, Any]) -> Table:
    redis = next((row for row in results["corequeue"] if row["driver"] == "redis"), None)
    reference = figure(redis, "drain")
    table = Table(title=_title(results), caption=MAIN_CAPTION)
    table.add_column("library (worker)")
    for column in MAIN_COLUMNS:
        table.add_column(column, justify="right")
    for row in results["corequeue"]:
        table.add_row(*_corequeue_cells(row))
        if "raw" in row:
            table.add_row(*_raw_cells(row["raw"], "evalsha", "`return 1`"))
            table.add_row(*_raw_cells(row["raw"], "evalsha_push", "corequeue's push script"))
    for peer in results["peers"]:
        table.add_row(*_peer_cells(peer, reference))
    return table


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
    late = row.get("lateness", {})
    return [
        LABELS[row["driver"]],
        _rate(figure(row, "enqueue")),
        _rate(figure(row, "dispatch_sync")),
        _rate(figure(row, "enqueue_many")),
        _rate(figure(row, "drain")),
        _rate(figure(row, "drain_io", "rate")),
        *_lateness_cells(late),
        "",
    ]


def _raw_cells(raw: dict[str, Any], name: str, script: str) -> list[str]:
    keys = figure(raw, "keys")
    label = f"  redis-py EVALSHA of {script}, {keys:.0f} KEYS, push's ARGV (reference)"
    cells = [label, _rate(figure(raw, name)), _rate(figure(raw, f"{name}_sync"))]
    return cells + [""] * (len(MAIN_COLUMNS) + 1 - len(cells))


def _peer_cells(peer: dict[str, Any], reference: float) -> list[str]:
    if "error" in peer:
        return [f"{peer['peer']}: n/a ({escape(peer['error'])})"] + [""] * len(MAIN_COLUMNS)
    drain = figure(peer, "drain")
    ratio = reference / drain if drain and not math.isnan(drain) else NAN
    sync = _rate(peer["enqueue_sync"]) if "enqueue_sync" in peer else "async only"
    return [
        f"{peer['peer']} ({peer.get('worker', '')})",
        _rate(figure(peer, "enqueue")),
        sync,
        "",
        _rate(drain),
        _rate(figure(peer, "drain_io", "rate")),
        *_lateness_cells(peer.get("lateness", {})),
        "" if math.isnan(ratio) else f"{ratio:.1f}x",
    ]


def _lateness_cells(late: dict[str, Any]) -> list[str]:
    cells = [_ms(figure(late, "p50")), _ms(figure(late, "p99")), _ms(figure(late, "max"))]
    return [*cells, _early(late)]


def _kept_results_line(row: dict[str, Any]) -> str:
    """The drain with every result kept, beside the plain drain (and Redis memory per result)."""
    plain, keeping = figure(row, "drain"), figure(row, "drain_keep_results")
    share = keeping / plain * 100 if plain and not math.isnan(plain) else NAN
    line = (
        f"{row['driver']} drain with keep_results: {_rate(keeping)} jobs/s, "
        f"{share:.0f}% of the plain drain ({_rate(plain)} jobs/s)"
    )
    per_result = figure(row, "kept_result_bytes")
    if per_result and not math.isnan(per_result):
        line += f"; {per_result:.0f} bytes of Redis memory per kept result"
    return line


def _scaling_line(redis: dict[str, Any]) -> str:
    redis = dict(redis, drain_1p=redis.get("drain"))
    processes = sorted(
        int(key[6:-1]) for key in redis if key.startswith("drain_") and key.endswith("p")
    )
    scaling = [f"{p}: {_rate(figure(redis, f'drain_{p}p'))}" for p in processes]
    return "Redis drain by worker processes: " + "; ".join(scaling) + " jobs/s"


def _one_call_line(redis: dict[str, Any], peers: list[dict[str, Any]]) -> str:
    """Say how one call at a time compares with raw redis-py and with the fastest peer.

    The raw figures and the dispatches compared with them were timed in the same turns.
    """
    raw = redis.get("raw", {})
    parts = []
    for call, suffix in (("dispatch", ""), ("dispatch_sync", "_sync")):
        ours = figure(raw, call)
        alone, push = figure(raw, f"evalsha{suffix}"), figure(raw, f"evalsha_push{suffix}")
        parts.append(
            f"{call} {_rate(ours)}/s = {_share(ours, push)} of redis-py EVALSHA of the push "
            f"script ({_rate(push)}/s), {_share(ours, alone)} of EVALSHA of `return 1` "
            f"({_rate(alone)}/s)"
        )
    text = "One call at a time on Redis, timed in turns: " + "; ".join(parts)
    enqueues = [(figure(p, "enqueue"), p["peer"]) for p in peers if "enqueue" in p]
    if enqueues:
        best, name = max(enqueues)
        text += f"; fastest peer enqueue: {name} {_rate(best)}/s"
    return text


# --- bursts ------------------------------------------------------------------------------------


def _burst_table(rows: list[dict[str, Any]]) -> Table:
    """One row per driver for the burst of concurrent dispatches, its failures below."""
    count = next((r["burst"]["jobs"] for r in rows if "jobs" in r.get("burst", {})), 0)
    title = f"Bursts: {count:,} concurrent `await queue.dispatch(...)` from one event loop"
    errors = []
    for row in rows:
        found = figure(row, "burst", "errors")
        if isinstance(found, dict):
            errors += [f"{LABELS[row['driver']]}: {n:,} x {text}" for text, n in found.items()]
    table = Table(title=title, caption=escape("\n".join(errors)) or None)
    table.add_column("driver")
    for column in BURST_COLUMNS:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(LABELS[row["driver"]], *_burst_cells(row.get("burst", {})))
    return table


def _burst_cells(burst: dict[str, Any]) -> list[str]:
    if "jobs" not in burst:
        return ["n/a"] + [""] * (len(BURST_COLUMNS) - 1)
    failed = f"[bold red]{burst['failed']:,}[/]" if burst["failed"] else "0"
    stored = f"{burst['stored']:,}"
    if burst["stored"] != burst["jobs"] - burst["failed"]:
        stored = f"[bold red]{stored}[/]"
    latency = [_ms(burst["p50"]), _ms(burst["p99"]), _ms(burst["max"])]
    return [_rate(burst["rate"]), *latency, failed, stored]


# --- cost at scale -----------------------------------------------------------------------------


def _memory_table(results: dict[str, Any]) -> Table:
    """Redis used_memory per waiting and per delayed job, corequeue beside RQ, arq and Huey."""
    table = Table(title="Redis used_memory per job, small dict payload")
    for column in ("library", "jobs", "bytes per waiting job", "bytes per delayed job"):
        table.add_column(column, justify="left" if column == "library" else "right")
    for row in results["corequeue"]:
        if row["driver"] == "redis" and "scale" in row:
            jobs = figure(row, "scale", "jobs")
            table.add_row(LABELS["redis"], f"{jobs:,}", *_memory_cells(row["scale"]))
    jobs = results["settings"]["scale_peer_jobs"]
    for peer in results.get("peer_memory", []):
        table.add_row(peer["peer"], f"{jobs:,}", *_memory_cells(peer))
    return table


def _memory_cells(figures: dict[str, Any]) -> list[str]:
    return [_rate(figure(figures, "memory", name)) for name in ("waiting", "delayed")]


def _scale_table(results: dict[str, Any]) -> Table:
    jobs = results["settings"]["scale_jobs"]
    title = (
        f"At scale: {jobs:,} jobs drained by one worker process (its VmRSS after 1/10 and after "
        f"all); a 1/10 of it drained alone, then with {jobs:,} delayed jobs stored beside"
    )
    caption = "InProcess is left out: its jobs live in the worker's own memory"
    table = Table(title=title, caption=caption)
    table.add_column("driver")
    for column in SCALE_COLUMNS:
        table.add_column(column, justify="right")
    for row in results["corequeue"]:
        if "scale" in row:
            table.add_row(LABELS[row["driver"]], *_scale_cells(row["scale"]))
    return table


def _scale_cells(scale: dict[str, Any]) -> list[str]:
    rss, beside = scale.get("rss", {}), scale.get("beside", {})
    tenth, jobs = figure(rss, "tenth"), figure(scale, "jobs")
    growth = figure(rss, "growth")
    growth_cell = "n/a" if math.isnan(growth) else f"{growth:+.1%}"
    if abs(growth) > 0.10:
        growth_cell = f"[bold red]{growth_cell}[/]"
    alone, next_to = figure(beside, "alone"), figure(beside, "beside")
    return [
        _mib(figure(rss, "rss_kb", str(tenth))),
        _mib(figure(rss, "rss_kb", str(jobs))),
        growth_cell,
        _rate(figure(rss, "rate")),
        _used_memory_delta(rss.get("used_memory")),
        _rate(alone),
        _rate(next_to),
        _share(next_to, alone),
    ]


def _used_memory_delta(memory: dict[str, int] | None) -> str:
    if not memory:
        return ""
    delta = memory["drained"] - memory["baseline"]
    return f"{delta:+,} B (full: {memory['filled'] - memory['baseline']:+,})"


# --- cells -------------------------------------------------------------------------------------


def _early(late: dict[str, Any]) -> str:
    """Return how many deferred jobs started before their exact due instant, flagged if any."""
    early = figure(late, "early")
    if math.isnan(early):
        return "n/a"
    samples = late.get("samples")
    of = f" of {samples:.0f}" if samples else ""
    return f"[bold red]{early:.0f}{of}[/]" if early else f"0{of}"


def _rate(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.0f}"


def _ms(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.1f}"


def _mib(kib: float) -> str:
    return "n/a" if math.isnan(kib) else f"{kib / 1024:,.1f}"


def _share(part: float, whole: float) -> str:
    return "n/a" if math.isnan(part) or math.isnan(whole) or not whole else f"{part / whole:.0%}"
