"""The Lua scripts of the Redis driver: loaded once, run by EVALSHA with a fallback to EVAL.

The server caches a script EVAL ran, so the next EVALSHA of it finds it (until a restart or
SCRIPT FLUSH, after which the fallback runs once more).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from corequeue.drivers.redis.connection import AnyRedis, SyncRedis, execute
from corequeue.drivers.redis.sync import execute_sync

_FUNCTION = re.compile(r"^local function (\w+)\(")
_COMMENT = re.compile(r"(^|\s)--.*$", re.MULTILINE)


@cache
def _package_text(name: str) -> str:
    package = resources.files(__package__ or "corequeue.drivers.redis")
    return package.joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _sections(lib: str) -> list[tuple[str | None, str]]:
    """Split lib.lua into top-level statements, each with the comment lines above it.

    Returns (function name, text) pairs; the name is None for a statement that is not a
    `local function` (constants, the KEYS names, NOW).
    """
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    comments: list[str] = []
    for line in lib.splitlines(keepends=True):
        if line.startswith("--") or (not line.strip() and comments):
            comments.append(line)
        elif line.startswith("local "):
            match = _FUNCTION.match(line)
            sections.append((match[1] if match else None, [*comments, line]))
            comments = []
        else:
            sections[-1][1].extend([*comments, line])
            comments = []
    sections[-1][1].extend(comments)
    return [(name, "".join(lines)) for name, lines in sections]


def link(body: str, lib: str) -> str:
    """Return lib.lua's statements that `body` needs, then `body`: one script's source.

    Redis runs the whole source on every call, so each function of the library it carries
    costs a closure per call (about 6 µs for all of them). Functions the body never calls,
    directly or through another, are left out; every other statement is kept.
    """
    sections = _sections(lib)

    def calls(text: str) -> set[str]:
        words = set(re.findall(r"\w+", _COMMENT.sub("", text)))
        return {name for name, _ in sections if name is not None and name in words}

    needed: set[str] = set()
    pending = calls(body)
    for name, text in sections:
        if name is None:
            pending |= calls(text)
    while pending:
        name = pending.pop()
        needed.add(name)
        text = next(text for found, text in sections if found == name)
        pending |= calls(text) - needed
    kept = [text for name, text in sections if name is None or name in needed]
    return "".join(kept) + body


class Script:
    """One Lua script (lib.lua's parts it needs + its body), run on the queue's slot's node.

    Args:
        name: The script's file name without `.lua`.
        slot: The Cluster hash slot of every key the script is given.
        key_count: How many of the arguments of each call are KEYS (the rest are ARGV).
    """

    def __init__(self, name: str, slot: int, key_count: int) -> None:
        self.source = link(_package_text(name), _package_text("lib"))
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self.slot = slot
        self.key_count = key_count

    async def run(self, client: AnyRedis, keys_and_args: list[Any], key_count: int = 0) -> Any:
        """Run the script once; load it if the server does not know it (first use, restart).

        Args:
            client: Where to run it.
            keys_and_args: The KEYS, then the ARGV.
            key_count: How many KEYS there are, when not the script's usual number.
        """
        count = key_count or self.key_count
        try:
            return await execute(client, self.slot, "EVALSHA", self.sha, count, *keys_and_args)
        except NoScriptError:
            return await execute(client, self.slot, "EVAL", self.source, count, *keys_and_args)

    def run_sync(self, client: SyncRedis, keys_and_args: list[Any]) -> Any:
        """Run the script once from synchronous code, as `run()` does (same fallback)."""
        count = self.key_count
        try:
            return execute_sync(client, self.slot, "EVALSHA", self.sha, count, *keys_and_args)
        except NoScriptError:
            return execute_sync(client, self.slot, "EVAL", self.source, count, *keys_and_args)

    async def run_many(self, client: AnyRedis, calls: list[list[Any]]) -> list[Any]:
        """Run the script once per argument list, in one round trip where the client allows.

        Only for idempotent scripts: after NOSCRIPT the whole batch runs again.
        """
        if len(calls) == 1:
            return [await self.run(client, calls[0])]
        if isinstance(client, RedisCluster):  # cluster pipelines refuse scripts: run them at once
            return list(await asyncio.gather(*(self.run(client, args) for args in calls)))
        try:
            return await self._pipeline(client, calls, by_sha=True)
        except NoScriptError:
            return await self._pipeline(client, calls, by_sha=False)

    async def _pipeline(self, client: Redis, calls: list[list[Any]], by_sha: bool) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            for args in calls:
                if by_sha:
                    pipe.evalsha(self.sha, self.key_count, *args)
                else:
                    pipe.eval(self.source, self.key_count, *args)
            return list(await pipe.execute())
