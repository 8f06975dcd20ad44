"""What every peer's no-op task calls: counts jobs and deferred lateness, then writes a report.

Set by the runner in the worker's environment: BENCH_RESULT (the report's path) and
BENCH_EXPECT (how many jobs to wait for). A job whose payload has "warm" only marks the worker
as up (BENCH_RESULT + ".warm"); the others count. A deferred job carries `due_ns`, its exact
due instant; one that starts before it is early. Threads and processes may call `hit`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {"count": 0, "first": None, "late_ms": [], "early": 0}


def hit(payload: dict[str, Any]) -> None:
    """Record one job run now (the body of every peer's no-op task)."""
    now_ns = time.time_ns()
    now = now_ns / 1e9
    result = Path(os.environ["BENCH_RESULT"])
    if payload.get("warm"):
        result.with_name(result.name + ".warm").write_text("up", encoding="utf-8")
        return
    with _lock:
        _state["count"] += 1
        if _state["first"] is None:
            _state["first"] = now
        due_ns = payload.get("due_ns")
        if due_ns is not None:
            _state["late_ms"].append((now_ns - due_ns) / 1_000_000)
            if now_ns < due_ns:
                _state["early"] += 1
        if _state["count"] == int(os.environ["BENCH_EXPECT"]):
            report = dict(_state, last=time.time())
            partial = result.with_name(result.name + ".part")
            partial.write_text(json.dumps(report), encoding="utf-8")
            partial.rename(result)
