"""The worker's parts in this process: --app targets, live status and log formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

import corequeue as cq
from corequeue.cli.common import Output, Refused
from corequeue.cli.logs import JobContext, JsonLines, configure_logging
from corequeue.cli.status import Status
from corequeue.cli.worker import WorkerOptions, build_app
from corequeue.config import parse_config
from corequeue.factory import App, QueueFactory
from corequeue.metrics import JobCounts


def options(config_path: Path | None = None, *queues: str) -> WorkerOptions:
    return WorkerOptions(config_path, queues, None, "127.0.0.1", "module:attr")


def memory_factory() -> QueueFactory:
    config = parse_config({"queue": {"a": {"driver": "memory"}, "b": {"driver": "memory"}}})
    return QueueFactory(config, prometheus=False)


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("corequeue", logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


# --- --app targets -----------------------------------------------------------------------------


async def test_a_factory_is_run_over_the_chosen_queues() -> None:
    factory = memory_factory()

    everything = await build_app(factory, options())
    chosen = await build_app(factory, options(None, "b"))

    assert [queue.name for queue in everything.queues] == ["a", "b"]
    assert [queue.name for queue in chosen.queues] == ["b"]


async def test_an_app_is_run_as_it_is_or_over_the_chosen_queues() -> None:
    app = App(memory_factory())

    assert await build_app(app, options()) is app
    assert [queue.name for queue in (await build_app(app, options(None, "a"))).queues] == ["a"]


async def test_a_queue_is_run_alone() -> None:
    queue = cq.Queue(cq.InProcessDriver(), name="solo")

    app = await build_app(queue, options())

    assert app.queues == [queue]
    with pytest.raises(Refused, match="is the single queue 'solo'"):
        await build_app(queue, options(None, "other"))


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_callable_gets_the_factory_built_from_the_configuration(
    tmp_path: Path, kind: str
) -> None:
    config = tmp_path / "corequeue.yaml"
    config.write_text("queue: {jobs: {driver: memory}}\n")
    given: list[QueueFactory] = []

    def setup(factory: QueueFactory) -> None:
        given.append(factory)

    async def setup_async(factory: QueueFactory) -> None:
        given.append(factory)

    app = await build_app(setup if kind == "sync" else setup_async, options(config))

    assert given == [app.factory]
    assert app.factory.config.names == ("jobs",)


async def test_config_is_refused_for_targets_with_their_own() -> None:
    with pytest.raises(Refused, match="--config cannot be used with --app module:attr"):
        await build_app(memory_factory(), options(Path("corequeue.yaml")))


async def test_other_values_are_refused() -> None:
    with pytest.raises(Refused, match="is a int; expected a QueueFactory"):
        await build_app(42, options())


# --- status ------------------------------------------------------------------------------------


async def test_status_prints_a_line_per_change_of_a_queue(
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = cq.Queue(cq.InProcessDriver(), name="emails")
    await queue.dispatch("x")
    counts = JobCounts()
    counts.observe("emails", "t", "processed", 0.1)
    status = Status(Output(as_json=False))

    status.started({"emails": "memory, parallelism 1"})
    await status.refresh([queue], counts)
    await status.refresh([queue], counts)  # nothing changed: nothing printed
    status.stopped()

    assert capsys.readouterr().out.splitlines() == [
        "worker started: emails (memory, parallelism 1)",
        "emails: waiting 1, delayed 0, reserved 0, failed 0, timeout 0, completed 0 | "
        "this worker: processed 1, retried 0, failed 0",
        "worker stopped",
    ]


async def test_status_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    queue = cq.Queue(cq.InProcessDriver(), name="emails")
    status = Status(Output(as_json=True))

    status.announce("metrics at http://127.0.0.1:1/metrics", port=1)
    await status.refresh([queue], JobCounts())

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {
        "event": "announce",
        "message": "metrics at http://127.0.0.1:1/metrics",
        "port": 1,
    }
    assert lines[1]["event"] == "status"
    assert lines[1]["channels"]["waiting"] == 0
    assert lines[1]["worker"] == {"processed": 0, "retried": 0, "failed": 0}


async def test_status_says_when_a_store_cannot_be_read(capsys: pytest.CaptureFixture[str]) -> None:
    class Down(cq.InProcessDriver):
        async def info(self) -> cq.QueueInfo:
            raise cq.StoreUnavailable("redis://cache")

    status = Status(Output(as_json=False))

    await status.refresh([cq.Queue(Down(), name="q")], JobCounts())

    assert "q: store unavailable | this worker: processed 0" in capsys.readouterr().out


async def test_status_on_a_terminal_is_a_live_table() -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, highlight=False)
    status = Status(Output(as_json=False), terminal=terminal)
    queue = cq.Queue(cq.InProcessDriver(), name="emails")
    await queue.dispatch("x")

    status.started({"emails": "memory"})
    await status.refresh([queue], JobCounts())
    status.stopped()

    shown = screen.getvalue()
    assert "worker started: emails (memory)" in shown
    assert "processed here" in shown
    assert "│ emails │       1 │" in shown
    assert "worker stopped" in shown


# --- logs --------------------------------------------------------------------------------------


def test_job_records_carry_id_type_and_attempt() -> None:
    context = JobContext()
    plain = record("queue default: cannot pop")
    about_job = record("it failed", job_id="j1", job_type="app.Send", attempt=2)
    naming_it = record("job j1 failed", job_id="j1", job_type="app.Send", attempt=2)

    for each in (plain, about_job, naming_it):
        assert context.filter(each)

    assert plain.job == ""  # type: ignore[attr-defined]
    assert about_job.job == " [job j1 type app.Send attempt 2]"  # type: ignore[attr-defined]
    assert naming_it.job == " [type app.Send attempt 2]"  # type: ignore[attr-defined]


def test_json_log_lines_hold_the_job_fields_and_the_error() -> None:
    try:
        raise ValueError("bad")
    except ValueError as exc:
        failed = record("it failed", job_id="j1", job_type="app.Send", attempt=1)
        failed.exc_info = (type(exc), exc, exc.__traceback__)

    line = json.loads(JsonLines().format(failed))

    assert (line["level"], line["message"], line["job_id"], line["attempt"]) == (
        "warning",
        "it failed",
        "j1",
        1,
    )
    assert "ValueError: bad" in line["error"]


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("as_json", "terminal", "formatter"),
    [(True, False, JsonLines), (False, True, logging.Formatter), (False, False, logging.Formatter)],
)
def test_configure_logging_picks_one_handler(
    root_logger: logging.Logger, as_json: bool, terminal: bool, formatter: type
) -> None:
    console = Console(file=io.StringIO()) if terminal else None

    configure_logging("warning", as_json=as_json, console=console)

    assert len(root_logger.handlers) == 1
    assert isinstance(root_logger.handlers[0].formatter, formatter)
    assert root_logger.level == logging.WARNING
