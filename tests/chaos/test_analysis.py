"""The chaos checks themselves: each broken promise in a ledger is caught, each fault excuses."""

from __future__ import annotations

from tests.chaos.analysis import Expected, Faults, Kill, Outage, analyse
from tests.chaos.ledger import Ledgers, Run

LEASE_US = 2_000_000
S = 1_000_000  # one second in µs


def expected(*job_ids: str, kind: str = "immediate", due_us: int = 0) -> Expected:
    return Expected(
        kinds=dict.fromkeys(job_ids, kind), due_us=dict.fromkeys(job_ids, due_us), lease_us=LEASE_US
    )


def completed(job_id: str, worker: int, attempt: int, at_us: int, recovered: bool = False) -> Run:
    return Run(worker, job_id, attempt, at_us, recovered, at_us + 1, None, at_us + 2, at_us + 3)


def abandoned(job_id: str, worker: int, attempt: int, at_us: int) -> Run:
    """Popped and started, then nothing: its worker died."""
    return Run(worker, job_id, attempt, at_us, False, at_us + 1)


def problems(
    plan: Expected, runs: list[Run], kills: tuple[Kill, ...] = (), outages: tuple[Outage, ...] = ()
) -> list[str]:
    faults = Faults(list(kills), list(outages), LEASE_US)
    return analyse("test", plan, Ledgers(runs), faults, 1.0).problems


def test_a_clean_run_has_no_problems() -> None:
    assert problems(expected("a", "b"), [completed("a", 0, 1, S), completed("b", 1, 1, S)]) == []


def test_a_job_never_completed_is_lost() -> None:
    assert problems(expected("a", "b"), [completed("a", 0, 1, S)]) == [
        "lost: job b never completed"
    ]


def test_a_job_meant_to_fail_must_not_complete() -> None:
    assert problems(expected("a", kind="doomed"), [completed("a", 0, 1, S)]) == [
        "job a meant to fail completed"
    ]


def test_a_start_before_the_due_time_is_caught() -> None:
    assert problems(expected("a", due_us=2 * S), [completed("a", 0, 1, S)]) == [
        f"job a attempt 1 started {S - 1} µs before it was due"
    ]


def test_a_kill_explains_a_second_completion() -> None:
    runs = [completed("a", 0, 1, S), completed("a", 1, 2, 4 * S, recovered=True)]
    runs[0].acked_us = None

    assert problems(expected("a"), runs, kills=(Kill(0, S + 5),)) == []


def test_a_lease_lost_without_a_fault_is_caught() -> None:
    runs = [completed("a", 0, 1, S), completed("a", 1, 2, 4 * S, recovered=True)]
    runs[0].acked_us = None

    assert problems(expected("a"), runs) == [
        "job a attempt 2 came back from an expired lease that no fault explains",
        "job a attempt 1 in worker 0 was never given back, yet no fault hit it",
    ]


def test_a_kill_long_after_the_worker_let_go_explains_nothing() -> None:
    runs = [completed("a", 0, 1, S), completed("a", 1, 2, 9 * S, recovered=True)]
    runs[0].acked_us = None

    found = problems(expected("a"), runs, kills=(Kill(0, 8 * S),))

    assert "job a attempt 2 came back from an expired lease that no fault explains" in found


def test_the_store_restart_explains_what_it_overlapped() -> None:
    runs = [completed("a", 0, 1, S), completed("a", 1, 2, 5 * S, recovered=True)]

    assert problems(expected("a"), runs, outages=(Outage(S + 10, 2 * S),)) == []


def test_a_job_handed_out_again_after_its_ack_is_caught() -> None:
    runs = [completed("a", 0, 1, S), completed("a", 1, 2, 2 * S)]

    assert problems(expected("a"), runs) == [
        "job a attempt 2 was handed out again while attempt 1 was held or done"
    ]


def test_a_skipped_attempt_needs_a_fault_between_its_neighbours() -> None:
    runs = [
        Run(0, "a", 1, S, False, S + 1, S + 2, settled_us=S + 3),
        completed("a", 1, 3, 6 * S, recovered=True),
    ]

    assert problems(expected("a"), runs, kills=(Kill(2, 2 * S),)) == []
    assert problems(expected("a"), runs, kills=(Kill(2, 7 * S),)) == [
        "job a attempt 3 came back from an expired lease that no fault explains"
    ]


def test_a_run_left_unfinished_needs_its_worker_killed() -> None:
    runs = [abandoned("a", 0, 1, S), completed("a", 1, 2, 4 * S, recovered=True)]

    assert problems(expected("a"), runs, kills=(Kill(0, S + 5),)) == []
    assert "job a attempt 1 in worker 0 was never given back, yet no fault hit it" in problems(
        expected("a"), runs
    )
