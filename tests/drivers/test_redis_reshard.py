"""A live reshard of the test Redis Cluster under a running queue: no job is lost or run twice.

The queue's hash slot is moved to another master the way `redis-cli --cluster reshard` does it
(CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE of its keys a few at a time, CLUSTER SETSLOT NODE
on every master), while a producer dispatches and two consumers run jobs; then it is moved back.
Meanwhile the drivers meet TRYAGAIN (the queue's keys are split between two nodes), ASK (they
have all moved, the slot not yet) and MOVED (the slot moved). The slot map is restored whatever
happens, and the queue has a slot no other key uses when the test starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

import corequeue as cq
from corequeue.drivers.base import QueueInfo
from corequeue.drivers.redis import RedisDriver, connection
from corequeue.errors import StoreUnavailable
from tests.support.driver_redis import raw_client, redis_cluster_url, unique_queue_name, wipe

logger = logging.getLogger(__name__)

JOBS = 400
"""Jobs the producer dispatches, in small batches, across both moves."""

KEYS_PER_MIGRATE = 2
"""Keys per MIGRATE call: small, so the queue's keys sit on two nodes for a while."""

GUARD_SECONDS = 45.0
"""The whole run's limit; it takes a few seconds."""


@dataclass(frozen=True)
class Record:
    """A job of the test: its number."""

    __job_type__ = "tests.drivers.reshard.Record"
    n: int


@dataclass
class Ledger:
    """Every listener run (job id, attempt), and who ran it."""

    runs: list[tuple[str, int]] = field(default_factory=list)
    ran: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record(self, job: cq.ReceivedJob) -> None:
        async with self.ran:
            self.runs.append((job.id, job.attempt))
            self.ran.notify_all()

    async def wait_for(self, count: int) -> None:
        """Return once `count` runs are recorded."""
        async with self.ran:
            await self.ran.wait_for(lambda: len(self.runs) >= count)

    async def wait_for_all(self, ids: list[str]) -> None:
        """Return once every job of `ids` has run."""
        async with self.ran:
            await self.ran.wait_for(lambda: set(ids) <= {job_id for job_id, _ in self.runs})


@dataclass
class Redirects:
    """How often the drivers met each answer of a migrating slot."""

    counts: Counter[str] = field(default_factory=Counter)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Count in `connection`'s cluster path, which handles them."""
        in_slot, asking = connection._execute_in_slot, connection._execute_asking

        async def counted_in_slot(cluster: RedisCluster, slot: int, args: Any) -> Any:
            try:
                return await in_slot(cluster, slot, args)
            except redis_errors.TryAgainError:
                self.counts["TRYAGAIN"] += 1
                raise

        async def counted_asking(cluster: RedisCluster, ask: Any, args: Any) -> Any:
            self.counts["ASK"] += 1
            return await asking(cluster, ask, args)

        monkeypatch.setattr(connection, "_execute_in_slot", counted_in_slot)
        monkeypatch.setattr(connection, "_execute_asking", counted_asking)


class Masters:
    """Plain clients on each master of the cluster, to move one slot between them."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.clients = {address: Redis(host=address[0], port=address[1]) for address in addresses}
        self.ids: dict[tuple[str, int], str] = {}

    async def load(self) -> None:
        for address, client in self.clients.items():
            self.ids[address] = (await _command(client, "CLUSTER", "MYID")).decode()

    async def owner(self, slot: int) -> tuple[str, int]:
        """Return the master that holds `slot`, as the cluster itself says."""
        client = next(iter(self.clients.values()))
        for first, last, (host, port, *_), *_ in await _command(client, "CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return host.decode(), int(port)
        raise AssertionError(f"slot {slot} is not served")

    async def move(self, slot: int, source: tuple[str, int], target: tuple[str, int]) -> None:
        """Move `slot` and its keys from `source` to `target`, a few keys per MIGRATE.

        A move cut short (the test failed or timed out) is finished at full speed, so the
        slot never stays split between two nodes.
        """
        source_client, target_client = self.clients[source], self.clients[target]
        await _command(target_client, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.ids[source])
        await _command(source_client, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.ids[target])
        try:
            await self._migrate_keys(slot, source, target, pause_seconds=0.02)
            await asyncio.sleep(0.1)  # all keys moved, the slot not yet: answers are ASK now
        finally:
            await self._migrate_keys(slot, source, target, pause_seconds=0)
            await self._assign(slot, target)

    async def restore(self, slot: int, home: tuple[str, int]) -> None:
        """Give `slot` back to `home` with its keys, if a move left it elsewhere."""
        owner = await self.owner(slot)
        if owner != home:
            await self.move(slot, owner, home)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def _migrate_keys(
        self, slot: int, source: tuple[str, int], target: tuple[str, int], pause_seconds: float
    ) -> None:
        source_client = self.clients[source]
        while keys := await _command(
            source_client, "CLUSTER", "GETKEYSINSLOT", slot, KEYS_PER_MIGRATE
        ):
            await _command(
                source_client,
                "MIGRATE",
                target[0],
                target[1],
                "",
                0,
                5000,
                "REPLACE",
                "KEYS",
                *keys,
            )
            await asyncio.sleep(pause_seconds)  # the queue's keys sit on both nodes meanwhile

    async def _assign(self, slot: int, node: tuple[str, int]) -> None:
        # The new owner first, then the others (as redis-cli does), so no master sends a client
        # back to the old owner once the new one has the slot.
        for address in sorted(self.clients, key=lambda each: each != node):
            await _command(
                self.clients[address], "CLUSTER", "SETSLOT", slot, "NODE", self.ids[node]
            )


@pytest.fixture
async def masters() -> AsyncIterator[Masters]:
    async with raw_client(redis_cluster_url(), cluster=True) as cluster:
        assert isinstance(cluster, RedisCluster)
        await cluster.initialize()
        addresses = [(node.host, int(node.port)) for node in cluster.get_primaries()]
    if len(addresses) < 2:
        pytest.skip("the test cluster has a single master")
    made = Masters(addresses)
    await made.load()
    yield made
    await made.close()


async def quiet_queue_name(masters: Masters) -> str:
    """Return a fresh queue name whose slot holds no key yet (no other test uses it)."""
    for _ in range(100):
        name = unique_queue_name()
        slot = RedisDriver.from_url(redis_cluster_url(), name=name, cluster=True).keys.slot
        owner = masters.clients[await masters.owner(slot)]
        if not await _command(owner, "CLUSTER", "COUNTKEYSINSLOT", slot):
            return name
    raise AssertionError("no quiet slot found")


@pytest.mark.slow
async def test_a_live_reshard_loses_no_job_and_runs_none_twice(
    masters: Masters, monkeypatch: pytest.MonkeyPatch
) -> None:
    redirects = Redirects()
    redirects.install(monkeypatch)
    name = await quiet_queue_name(masters)
    url, ledger = redis_cluster_url(), Ledger()
    producer = cq.Queue(RedisDriver.from_url(url, name=name, cluster=True))
    consumers = [
        cq.Queue(RedisDriver.from_url(url, name=name, cluster=True), parallelism=4)
        for _ in range(2)
    ]
    for consumer in consumers:
        consumer.subscribe(cq.listen(Record, ledger.record))
    slot = producer.driver.keys.slot  # type: ignore[attr-defined]  # a RedisDriver
    home = await masters.owner(slot)
    away = next(address for address in masters.clients if address != home)
    try:
        async with asyncio.timeout(GUARD_SECONDS):
            dispatched = await _run(producer, consumers, ledger, _moves(masters, slot, home, away))
        left = await producer.info()
    finally:
        await masters.restore(slot, home)
        await _close(producer, consumers, url)

    runs = Counter(job_id for job_id, _ in ledger.runs)
    logger.info("reshard: %d jobs, 2 moves, %s", len(dispatched), dict(redirects.counts))
    assert set(runs) == set(dispatched)  # none lost
    assert len(set(ledger.runs)) == len(ledger.runs)  # a job ran again only as a new attempt
    assert max(runs.values()) == 1  # and here, with 30 s leases, no job needed another attempt
    assert left == QueueInfo()  # every job acked: none left behind
    assert redirects.counts["TRYAGAIN"] > 0
    assert redirects.counts["ASK"] > 0
    assert await masters.owner(slot) == home


async def test_an_ask_to_a_node_missing_from_the_slot_map_uses_a_connection_of_its_own(
    masters: Masters,
) -> None:
    # An importing node that holds no slot yet is not in redis-py's map (redis-py #4015).
    driver = RedisDriver.from_url(redis_cluster_url(), name=unique_queue_name(), cluster=True)
    slot = driver.keys.slot
    host, port = await masters.owner(slot)
    async with raw_client(redis_cluster_url(), cluster=True) as cluster:
        assert isinstance(cluster, RedisCluster)
        await cluster.initialize()
        known = cluster.nodes_manager.nodes_cache.pop(f"{host}:{port}")
        try:
            ask = redis_errors.AskError(f"{slot} {host}:{port}")
            answer = await connection._execute_asking(cluster, ask, ("EXISTS", driver.keys.jobs))
        finally:
            cluster.nodes_manager.nodes_cache[known.name] = known

    assert answer == 0


async def test_a_slot_that_stays_half_moved_makes_calls_fail_as_store_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def half_moved(cluster: RedisCluster, slot: int, args: Any) -> Any:
        raise redis_errors.TryAgainError("Multiple keys request during rehashing of slot")

    monkeypatch.setattr(connection, "_execute_in_slot", half_moved)
    monkeypatch.setattr(connection, "TRYAGAIN_BUDGET_SECONDS", 0.05)
    driver = RedisDriver.from_url(redis_cluster_url(), name=unique_queue_name(), cluster=True)
    try:
        with pytest.raises(StoreUnavailable, match="rehashing"):
            await driver.info()
    finally:
        await driver.close()


def _moves(
    masters: Masters, slot: int, home: tuple[str, int], away: tuple[str, int]
) -> Callable[[Ledger], Awaitable[None]]:
    async def move_twice(ledger: Ledger) -> None:
        await ledger.wait_for(JOBS // 5)
        await masters.move(slot, home, away)
        assert await masters.owner(slot) == away
        await ledger.wait_for(JOBS // 2)
        await masters.move(slot, away, home)

    return move_twice


async def _run(
    producer: cq.Queue,
    consumers: list[cq.Queue],
    ledger: Ledger,
    moves: Callable[[Ledger], Awaitable[None]],
) -> list[str]:
    """Consume while dispatching JOBS jobs in small batches and while `moves` runs."""
    dispatched: list[str] = []

    async def produce() -> None:
        for first in range(0, JOBS, 5):
            batch = [Record(n) for n in range(first, first + 4)]
            later = cq.adjust(Record(first + 4), defer=timedelta(milliseconds=30))
            dispatched.extend(await producer.dispatch_many([*batch, later]))
            await asyncio.sleep(0.01)  # spreads the jobs over the moves

    consuming = [
        asyncio.create_task(consumer.consume(handle_signals=False)) for consumer in consumers
    ]
    try:
        await asyncio.gather(produce(), moves(ledger))
        await ledger.wait_for_all(dispatched)
    finally:  # a graceful stop: the consumers' last acks are in when they return
        for task in consuming:
            task.cancel()
        await asyncio.gather(*consuming, return_exceptions=True)
    return dispatched


async def _close(producer: cq.Queue, consumers: list[cq.Queue], url: str) -> None:
    driver = producer.driver
    assert isinstance(driver, RedisDriver)
    async with raw_client(url, cluster=True) as cluster:
        await wipe(driver, cluster)
    for queue in (producer, *consumers):
        with contextlib.suppress(Exception):
            await queue.close()


async def _command(client: Redis, *args: Any) -> Any:
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]  # redis-py
