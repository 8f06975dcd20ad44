"""Periodic jobs: cron and interval schedules whose every slot is enqueued exactly once.

Any number of workers of a queue tick over the same schedules; the store advances each
schedule's last slot and pushes that slot's job (id `periodic:<name>:<slot ms>`) in one atomic
step, so whichever worker comes first enqueues it. See docs/periodic.md.

The package reads top down: `schedule` (when slots fall, DST rules included), `registry` (the
declared schedules and what operators see of them), `store` (the store's side of the atomic
step) and `ticker` (deciding, at each tick, which slot is due and asking the store for it).
"""

from corequeue.periodic.registry import (
    JOB_ID_PREFIX,
    MAX_NAME_CHARS,
    MISFIRE_POLICIES,
    JobFactory,
    Misfire,
    PeriodicInfo,
    PeriodicJob,
    Schedules,
    parse_slot_job_id,
    slot_job_id,
)
from corequeue.periodic.schedule import (
    CRON_NICKNAMES,
    LONGEST_INTERVAL,
    CronSchedule,
    IntervalSchedule,
    Schedule,
    parse_schedule,
    slot_datetime,
    zone_named,
)
from corequeue.periodic.store import MemorySlotStore, SlotStore
from corequeue.periodic.ticker import (
    DEFAULT_FORGET_AFTER,
    DEFAULT_TICK_INTERVAL,
    Outcome,
    SlotOutcome,
    Ticker,
    TickerSettings,
    TickReport,
)

__all__ = [
    "CRON_NICKNAMES",
    "DEFAULT_FORGET_AFTER",
    "DEFAULT_TICK_INTERVAL",
    "JOB_ID_PREFIX",
    "LONGEST_INTERVAL",
    "MAX_NAME_CHARS",
    "MISFIRE_POLICIES",
    "CronSchedule",
    "IntervalSchedule",
    "JobFactory",
    "MemorySlotStore",
    "Misfire",
    "Outcome",
    "PeriodicInfo",
    "PeriodicJob",
    "Schedule",
    "Schedules",
    "SlotOutcome",
    "SlotStore",
    "TickReport",
    "Ticker",
    "TickerSettings",
    "parse_schedule",
    "parse_slot_job_id",
    "slot_datetime",
    "slot_job_id",
    "zone_named",
]
