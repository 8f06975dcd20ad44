"""What a chaos run must show, checked from the ledgers, the faults and the final channels.

- Every job meant to succeed completed at least once; no job meant to fail ever completed.
- No listener started before its job was due.
- The store hands a job out again only when its previous reservation was given back (retried,
  failed on purpose, released), or when that reservation's lease ran out (the new one is marked
  `recovered`) because a fault hit it: its worker was SIGKILLed while holding it, or it
  overlapped the store's restart. So a job completes twice only if it was in flight at a fault.
- A reservation never given back belongs to a worker killed while holding it, or overlapped
  the store's restart (the consumer gave up settling it; its lease ran out instead).

A reservation nobody wrote down (the worker died, or the store crashed, between the store's
reservation and the ledger line) shows as a skipped attempt number; a fault must have happened
between the reservations on either side of it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from tests.chaos.ledger import Ledgers, Run

FAULT_MARGIN_US = 1_000_000
"""How long past its last line a worker may still hold a reservation (an ack in flight)."""


@dataclass(frozen=True, slots=True)
class Kill:
    """A SIGKILL sent to worker `worker` at `at_us`."""

    worker: int
    at_us: int


@dataclass(frozen=True, slots=True)
class Outage:
    """The store crashed at `begin_us` and answered again at `end_us`."""

    begin_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class Expected:
    """What was dispatched: each job's kind and earliest start, and the lease of the workers."""

    kinds: dict[str, str]
    due_us: dict[str, int]
    lease_us: int


@dataclass
class Figures:
    """The numbers a chaos run reports."""

    driver: str
    jobs: int
    meant_to_fail: int
    kills: int
    store_restarts: int
    reservations: int
    duplicates: int
    recovered: int
    kill_recovery_max_s: float
    kill_recovery_median_s: float
    store_downtime_s: float
    store_recovery_s: float
    wall_s: float
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return the figures as one line for the terminal."""
        return (
            f"{self.driver}: {self.jobs} jobs ({self.meant_to_fail} meant to fail), "
            f"{self.kills} worker kills, {self.store_restarts} store restart, "
            f"{self.reservations} reservations, {self.duplicates} duplicate completions, "
            f"{self.recovered} lease recoveries; recovery after a kill "
            f"max {self.kill_recovery_max_s:.2f}s median {self.kill_recovery_median_s:.2f}s; "
            f"store down {self.store_downtime_s:.2f}s, acking again "
            f"{self.store_recovery_s:.2f}s after the crash; {self.wall_s:.1f}s in all"
        )


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults of a run and the lease they are measured against."""

    kills: list[Kill]
    outages: list[Outage]
    lease_us: int

    def killed_holding(self, run: Run, recovered_at_us: int | None = None) -> bool:
        """Whether the run's worker was killed while it held the reservation.

        Held means: after the pop, before the store confirmed it back, and while the worker
        still had a reason to renew it (within a lease and a margin of its last line). With
        `recovered_at_us`, the kill must also come before that recovery. (How long after is
        not bounded: a recovered job waits behind every job already waiting.)
        """
        window = self.lease_us + FAULT_MARGIN_US
        until = min(run.given_back_us or run.last_us + window, run.last_us + window)
        return any(
            kill.worker == run.worker
            and run.popped_us <= kill.at_us <= until
            and (recovered_at_us is None or kill.at_us <= recovered_at_us)
            for kill in self.kills
        )

    def caught_in_outage(self, run: Run) -> bool:
        """Whether the reservation was held (within a lease) across the store's restart."""
        end = run.given_back_us or run.last_us
        return any(
            run.popped_us <= outage.end_us + self.lease_us
            and end >= outage.begin_us - self.lease_us
            for outage in self.outages
        )

    def fault_between(self, after_us: int, before_us: int) -> bool:
        """Whether a worker was killed, or the store crashed, between the two moments."""
        moments = [kill.at_us for kill in self.kills]
        moments += [outage.begin_us for outage in self.outages]
        return any(after_us <= moment <= before_us for moment in moments)


def analyse(
    driver: str,
    expected: Expected,
    ledgers: Ledgers,
    faults: Faults,
    wall_s: float,
) -> Figures:
    """Return the figures of a run, with every broken promise listed in `problems`."""
    by_job = ledgers.by_job()
    problems = _lost_or_wrongly_done(expected, ledgers)
    problems += _early_starts(expected, ledgers.runs)
    for job_id, runs in by_job.items():
        problems += _handed_out_wrongly(job_id, runs, faults)
    problems += _never_given_back(ledgers.runs, faults)
    recoveries = _kill_recoveries(by_job, faults)
    downtime, acking = _store_recovery(ledgers.runs, faults.outages)
    return Figures(
        driver=driver,
        jobs=len(expected.kinds),
        meant_to_fail=sum(1 for kind in expected.kinds.values() if kind == "doomed"),
        kills=len(faults.kills),
        store_restarts=len(faults.outages),
        reservations=len(ledgers.runs),
        duplicates=sum(1 for r in ledgers.runs if r.done_us is not None) - len(ledgers.done_ids()),
        recovered=sum(1 for run in ledgers.runs if run.recovered),
        kill_recovery_max_s=max(recoveries, default=0.0),
        kill_recovery_median_s=statistics.median(recoveries) if recoveries else 0.0,
        store_downtime_s=downtime,
        store_recovery_s=acking,
        wall_s=wall_s,
        problems=problems,
    )


def _lost_or_wrongly_done(expected: Expected, ledgers: Ledgers) -> list[str]:
    done = ledgers.done_ids()
    meant = {job_id for job_id, kind in expected.kinds.items() if kind != "doomed"}
    problems = [f"lost: job {job_id} never completed" for job_id in sorted(meant - done)]
    problems += [f"job {job_id} meant to fail completed" for job_id in sorted(done - meant)]
    return problems


def _early_starts(expected: Expected, runs: list[Run]) -> list[str]:
    early = [
        (run, expected.due_us[run.job_id] - run.started_us)
        for run in runs
        if run.started_us is not None
    ]
    return [
        f"job {run.job_id} attempt {run.attempt} started {by_us} µs before it was due"
        for run, by_us in early
        if by_us > 0
    ]


def _handed_out_wrongly(job_id: str, runs: list[Run], faults: Faults) -> list[str]:
    problems = []
    for before, run in zip([None, *runs], runs, strict=False):
        if run.recovered and not _recovery_explained(before, run, faults):
            problems.append(
                f"job {job_id} attempt {run.attempt} came back from an expired lease that no "
                f"fault explains"
            )
        elif not run.recovered and before is not None and not _given_back(before, faults):
            problems.append(
                f"job {job_id} attempt {run.attempt} was handed out again while attempt "
                f"{before.attempt} was held or done"
            )
    return problems


def _recovery_explained(before: Run | None, run: Run, faults: Faults) -> bool:
    """Whether a fault explains the expired lease that `run` recovered the job from.

    Every retry and every lost lease counts an attempt, so an attempt number skipped between
    two reservations in the ledgers is a reservation nobody wrote down: the store reserved the
    job, and then its worker died before writing the line, or the store crashed before its
    answer arrived. A fault must then have happened between the two reservations.
    """
    if before is not None and run.attempt == before.attempt + 1:
        return faults.killed_holding(before, run.popped_us) or faults.caught_in_outage(before)
    return faults.fault_between(0 if before is None else before.popped_us, run.popped_us)


def _retried_unseen(run: Run, faults: Faults) -> bool:
    """Whether the store may have retried the run although its worker died before saying so."""
    return run.failed_us is not None and faults.killed_holding(run)


def _given_back(run: Run, faults: Faults) -> bool:
    """Whether the store had the reservation back: retried, failed, released (maybe unseen)."""
    return run.settled_us is not None or run.released_us is not None or _retried_unseen(run, faults)


def _never_given_back(runs: list[Run], faults: Faults) -> list[str]:
    return [
        f"job {run.job_id} attempt {run.attempt} in worker {run.worker} was never given back, "
        f"yet no fault hit it"
        for run in runs
        if run.given_back_us is None
        and not faults.killed_holding(run)
        and not faults.caught_in_outage(run)
    ]


def _kill_recoveries(by_job: dict[str, list[Run]], faults: Faults) -> list[float]:
    """For each kill, seconds until every job its worker held had completed elsewhere."""
    recoveries = []
    for kill in faults.kills:
        only = Faults([kill], [], faults.lease_us)
        finishes = []
        for runs in by_job.values():
            if not any(only.killed_holding(run) for run in runs):
                continue
            later = [r.done_us for r in runs if r.done_us is not None and r.done_us > kill.at_us]
            if later:
                finishes.append(min(later) - kill.at_us)
        if finishes:
            recoveries.append(max(finishes) / 1e6)
    return recoveries


def _store_recovery(runs: list[Run], outages: list[Outage]) -> tuple[float, float]:
    """Seconds the store was down, and from its crash to the first ack after it was back."""
    if not outages:
        return 0.0, 0.0
    outage = outages[0]
    acks = [r.acked_us for r in runs if r.acked_us is not None and r.acked_us >= outage.end_us]
    acking = (min(acks) - outage.begin_us) / 1e6 if acks else float("nan")
    return (outage.end_us - outage.begin_us) / 1e6, acking
