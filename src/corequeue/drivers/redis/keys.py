"""The keys of one Redis queue (store layout 2), all in one Cluster hash slot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from redis.crc import key_slot

from corequeue.drivers.base import Channel, ChannelConfig
from corequeue.errors import InvalidOption

LAYOUT_VERSION: Final = 2
"""The store layout this release reads and writes (see docs/redis.md)."""


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The keys of one queue, all in one Cluster slot.

    Example:
        >>> keys = RedisKeys.for_channels(ChannelConfig.for_queue("emails"))
        >>> keys.jobs, keys.layout
        ('{app:env:emails}:jobs', '{app:env:emails}:layout')
    """

    waiting: str
    delayed: str
    reserved: str
    failed: str
    timeout: str
    notify: str
    seq: str
    expiries: str
    tokens: str
    jobs: str
    layout: str
    periodic: str
    priorities: str
    paused: str
    rates: str
    groups: str
    held: str
    held_index: str
    held_groups: str
    scratch: str
    wake_prefix: str
    layout1_job_prefix: str
    completed: str
    finished: str
    running: str
    results: str
    workers: str
    throughput: str

    @classmethod
    def for_channels(cls, channels: ChannelConfig) -> RedisKeys:
        """Return the channel keys plus the driver's own keys, beside the `waiting` key.

        Raises:
            InvalidOption: if the keys would not share one hash slot.
        """
        base = channels.waiting.removesuffix(Channel.WAITING.value)
        if base == channels.waiting:
            base = f"{channels.waiting}:"
        keys = cls(
            waiting=channels.waiting,
            delayed=channels.delayed,
            reserved=channels.reserved,
            failed=channels.failed,
            timeout=channels.timeout,
            notify=f"{base}notify",
            seq=f"{base}seq",
            expiries=f"{base}lease_expiries",
            tokens=f"{base}tokens",
            jobs=f"{base}jobs",
            layout=f"{base}layout",
            periodic=f"{base}periodic",
            priorities=f"{base}priorities",
            paused=f"{base}paused",
            rates=f"{base}rates",
            groups=f"{base}groups",
            held=f"{base}held",
            held_index=f"{base}held_index",
            held_groups=f"{base}held_groups",
            scratch=f"{base}migrating",
            wake_prefix=f"{base}wake:",
            layout1_job_prefix=f"{base}job:",
            completed=f"{base}completed",
            finished=f"{base}finished",
            running=f"{base}running",
            results=f"{base}results",
            workers=f"{base}workers",
            throughput=f"{base}throughput",
        )
        if len({key_slot(key.encode()) for key in keys.all()}) > 1:
            raise InvalidOption(
                f"the keys of a queue must share one hash slot (wrap a common part in "
                f"{{braces}}, as in '{{app:env:name}}:waiting'), got {channels}"
            )
        return keys

    @property
    def slot(self) -> int:
        """The Cluster hash slot every key of the queue lies in."""
        return key_slot(self.waiting.encode())

    def all(self) -> tuple[str, ...]:
        """Return every key the queue keeps (not the short-lived wake-up lists of pops)."""
        return (
            *(key for key in self.for_script() if key != self.wake_prefix),
            self.workers,
            self.throughput,
            self.scratch,
        )

    def for_script(self, wake: str | None = None) -> tuple[str, ...]:
        """Return the KEYS of every script, in the order lib.lua names them.

        Args:
            wake: The wake-up list of the pop whose timer runs the script; otherwise a
                placeholder that no script writes.
        """
        return (
            self.waiting,
            self.delayed,
            self.reserved,
            self.failed,
            self.timeout,
            self.notify,
            self.seq,
            self.expiries,
            self.tokens,
            self.jobs,
            self.layout,
            self.periodic,
            self.priorities,
            self.paused,
            self.rates,
            self.groups,
            self.held,
            self.held_index,
            self.held_groups,
            wake or self.wake_prefix,
            self.completed,
            self.finished,
            self.running,
            self.results,
        )

    def layout1_job(self, job_id: str) -> str:
        """Return the key that held the envelope of job `job_id` in store layout 1."""
        return f"{self.layout1_job_prefix}{job_id}"


SCRIPT_KEY_COUNT: Final = 24
"""How many KEYS `RedisKeys.for_script()` returns."""
