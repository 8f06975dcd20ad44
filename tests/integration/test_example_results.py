"""examples/results.py: a web request dispatches a job and waits for its result."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "results.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("results_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def test_the_request_returns_the_job_s_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the example's SQLite file goes here
    example = load_example()
    transport = httpx.ASGITransport(app=example.app)

    async with (
        example.lifespan(example.app),
        httpx.AsyncClient(transport=transport, base_url="http://example") as client,
    ):
        answer = await client.get("/thumbnail", params={"url": "cat.png"})
        again = await client.get(f"/jobs/{answer.json()['job']}")
        unknown = await client.get("/jobs/nobody")

    assert answer.status_code == 200
    assert answer.json()["width"] == 160
    assert (again.status_code, again.json()["height"]) == (200, 120)
    assert unknown.status_code == 404
