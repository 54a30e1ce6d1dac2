"""One live process per node name on a shared Redis.

A node that starts marks the unfinished jobs recorded under its name lost, at once: it takes
them for its own leftovers from before a restart. Two live processes given the same name
(`--node`, or two hosts with one host name) would so mark each other's running jobs lost. To
prevent that, a process holds its name while it runs:

    {prefix}:node:NAME   string   a token of the process that serves as NAME (PX, renewed)

The process renews the key every `BEAT` seconds; it expires `3 * BEAT` seconds after the last
renewal, so after a crash (`kill -9`) the name is free again within a few seconds, and after a
clean stop at once (the key is deleted). A process that finds the name held waits for it to
expire; if it is still held then, a live process renews it, and the start is refused.

This is a guard against a wrong setting, not what keeps a job's run safe: every write checks
the run number whatever the names.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gearjobs.store._base import NameTaken

__all__ = ("NodeName",)

logger = logging.getLogger("gearjobs.store")

BEAT = 1.0
"""Seconds between renewals of a held name."""

TAKE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
"""Take the name for token ARGV[1] (or renew it) for ARGV[2] ms; 0 if another token holds it."""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class NodeName:
    """The name `node` held by this process in the Redis keys under `prefix`."""

    def __init__(self, prefix: str, node: str, *, where: str, beat: float = BEAT) -> None:
        self.node = node
        self.key = f"{prefix}:node:{node}"
        self.token = secrets.token_hex(8)
        self.beat = beat
        self.where = where
        """The store as messages show it."""
        self._ttl_ms = int(3 * beat * 1000)

    def _taken(self) -> NameTaken:
        return NameTaken(
            f"another gearjobs process serves as node {self.node!r} on {self.where}: its "
            "running jobs would be marked lost by this one; give each process its own --node"
        )

    def take_now(self, client: Any) -> None:
        """Take the name with a blocking redis-py client, waiting for a dead holder's key to
        expire; NameTaken if a live process holds it."""
        deadline = time.monotonic() + 3 * self.beat + self.beat
        while not client.eval(TAKE, 1, self.key, self.token, self._ttl_ms):
            if time.monotonic() > deadline:
                raise self._taken()
            time.sleep(self.beat / 4)

    async def take(self, run: Callable[..., Awaitable[Any]]) -> None:
        """As `take_now`, with `run(keys=..., args=...)` calling the TAKE script."""
        deadline = time.monotonic() + 3 * self.beat + self.beat
        while not await run(keys=[self.key], args=[self.token, self._ttl_ms]):
            if time.monotonic() > deadline:
                raise self._taken()
            await asyncio.sleep(self.beat / 4)

    async def keep(self, run: Callable[..., Awaitable[Any]]) -> None:
        """Renew the name every beat, for ever; say so loudly if another process took it."""
        while True:
            await asyncio.sleep(self.beat)
            try:
                held = await run(keys=[self.key], args=[self.token, self._ttl_ms])
            except Exception as exc:  # Redis away: the key may expire; taken again on return
                logger.warning("renewing the node name %r failed: %s", self.node, exc)
                continue
            if not held:
                logger.error(
                    "another gearjobs process took the node name %r on %s while this one "
                    "runs: give each process its own --node",
                    self.node,
                    self.where,
                )

    async def release(self, run: Callable[..., Awaitable[Any]]) -> None:
        """Free the name at once (a clean stop)."""
        await run(keys=[self.key], args=[self.token])
