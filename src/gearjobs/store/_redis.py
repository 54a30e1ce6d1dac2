"""The Redis store: several server processes share records, journals and claims.

Keys, for a job with request id ID of user USER (prefix `gearjobs` by default):

    {prefix}:rec:ID:USER     hash     the record
    {prefix}:jnl:ID:USER     stream   the journal; entry n has the stream id 0-(n+1)
    {prefix}:lease:ID:USER   string   the node that owns the queued or running job (PX lease)
    {prefix}:active          set      ID:USER of every queued or running job
    {prefix}:finished        zset     ID:USER of finished jobs whose answer is kept, by end time
    {prefix}:remembered      zset     ID:USER of ids past retention, by end time (newest N kept)
    {prefix}:idx             zset     ID:USER by creation time (listing)
    {prefix}:node:NAME       string   the process serving as node NAME (see `_node_name`)

`prune` turns answers past retention into remembered ids; the record and journal keys also
expire on their own (twice the retention, plus an hour) in case no node prunes.

A claim is one Lua script (so one node wins an id), and so are the journal appends and the
final write, which check the run number so that a node whose lease ran out cannot write over
a later run. Each node renews the leases of its jobs; any node marks a job whose lease has
run out `lost` and ends its journal, so joined clients everywhere see the stream end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from gearjobs.jobs import GearjobsError, RequestIdentifier, ResponseFailure, ResponseSuccess
from gearjobs.store._base import (
    CLAIMED,
    ClaimResult,
    Store,
    StoreUnavailable,
    WriteRefused,
    lost_entry,
)
from gearjobs.store._codec import decode_entry, encode_entry
from gearjobs.store._node_name import BEAT as NAME_BEAT
from gearjobs.store._node_name import RELEASE, TAKE, NodeName
from gearjobs.store._records import (
    Body,
    Entry,
    JobKey,
    JobRecord,
    JobState,
    is_terminal,
)
from gearjobs.store._resp import AVAILABLE, ReplyError, RespConnection
from gearjobs.store._url import redacted

__all__ = ("RedisStore",)

logger = logging.getLogger("gearjobs.store")

T = TypeVar("T")

PRUNE_BATCH = 500
"""Records a prune's script handles a call, so that other requests interleave with it."""

_ScriptCall = tuple[Any, int, list[Any], "asyncio.Future[Any]", str]
"""A script, its number of keys, its keys and arguments, the caller's future, what it does."""


CLAIM = """
local rec, jnl, remembered = KEYS[1], KEYS[2], KEYS[3]
local active, lease, idx = KEYS[4], KEYS[5], KEYS[6]
local member, fp, replace_run, lease_ms, node, created =
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local run = 1
if redis.call('EXISTS', rec) == 1 then
  local state = redis.call('HGET', rec, 'state')
  local old_run = tonumber(redis.call('HGET', rec, 'run'))
  local finished = state == 'succeeded' or state == 'failed' or state == 'lost'
  local free = (state == 'lost' and redis.call('HGET', rec, 'fingerprint') == fp)
      or (replace_run ~= '' and tonumber(replace_run) == old_run and finished)
  if not free then return redis.call('HGETALL', rec) end
  run = old_run + 1
  redis.call('DEL', jnl, rec)
elseif redis.call('ZSCORE', remembered, member) then
  return {'__remembered__'}
end
for i = 7, #ARGV, 2 do redis.call('HSET', rec, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', rec, 'run', run)
redis.call('SET', lease, node, 'PX', lease_ms)
redis.call('SADD', active, member)
redis.call('ZADD', idx, created, member)
return {'__claimed__', tostring(run)}
"""

# The entries of APPEND and FINISH go at journal position ARGV[2] (0-based; '' for the end).
# A write whose reply never came (Redis hung) may have run, and the caller then sends the same
# entries from the same position again: those the journal holds already are skipped, so each
# entry is written once whatever the number of tries. A position past the end (an earlier
# write is missing) writes nothing and answers -2; a record that is no longer this run's to
# write (another run, or its end already written or marked lost) answers -3.
APPEND = """
local rec, jnl = KEYS[1], KEYS[2]
if redis.call('HGET', rec, 'run') ~= ARGV[1] then return -3 end
local state = redis.call('HGET', rec, 'state')
if state ~= 'queued' and state ~= 'running' then return -3 end
local n = redis.call('XLEN', jnl)
local skip = 0
if ARGV[2] ~= '' then
  skip = n - tonumber(ARGV[2])
  if skip < 0 then return -2 end
end
for i = 3 + 2 * skip, #ARGV, 2 do
  n = n + 1
  redis.call('XADD', jnl, '0-' .. n, 'k', ARGV[i], 'p', ARGV[i + 1])
end
return n
"""

FINISH = """
local rec, jnl, remembered, active, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, run, retention_ms, finished_at, node, nfields, start =
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
if redis.call('HGET', rec, 'run') ~= run then return -3 end
-- Marked lost by another node (this one stopped renewing its lease): the run is over, and
-- a retry runs the job again; writing the end now would leave a finished record whose
-- journal ends with the lost marker.
if redis.call('HGET', rec, 'state') == 'lost' then return -3 end
local n = redis.call('XLEN', jnl)
local skip = 0
if start ~= '' then
  skip = n - tonumber(start)
  if skip < 0 then return -2 end
end
local i = 8
for _ = 1, nfields do
  redis.call('HSET', rec, ARGV[i], ARGV[i + 1])
  i = i + 2
end
i = i + 2 * skip
while i <= #ARGV do
  n = n + 1
  redis.call('XADD', jnl, '0-' .. n, 'k', ARGV[i], 'p', ARGV[i + 1])
  i = i + 2
end
redis.call('PEXPIRE', rec, retention_ms)
if n > 0 then redis.call('PEXPIRE', jnl, retention_ms) end
redis.call('ZADD', KEYS[6], finished_at, member)
redis.call('SREM', active, member)
if redis.call('GET', lease) == node then redis.call('DEL', lease) end
return n
"""

# A record is updated only while its job is queued or running: an update whose reply never
# came may run after the job's end was written, and must not make it running again.
UPDATE = """
local rec = KEYS[1]
if redis.call('HGET', rec, 'run') ~= ARGV[1] then return -1 end
local state = redis.call('HGET', rec, 'state')
if state ~= 'queued' and state ~= 'running' then return -1 end
for i = 2, #ARGV, 2 do redis.call('HSET', rec, ARGV[i], ARGV[i + 1]) end
return 1
"""

# Mark a job lost when its lease is gone (its node died) or, with ARGV[4] set, when it belongs
# to that node (which restarted).
LOSE = """
local rec, jnl, lease, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, finished_at, payload, node, retention_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local state = redis.call('HGET', rec, 'state')
if state ~= 'queued' and state ~= 'running' then
  redis.call('SREM', active, member)
  return 0
end
if node == '' then
  if redis.call('EXISTS', lease) == 1 then return 0 end
elseif redis.call('HGET', rec, 'node') ~= node then
  return 0
end
local n = redis.call('XLEN', jnl) + 1
redis.call('XADD', jnl, '0-' .. n, 'k', 'f', 'p', payload)
redis.call('HSET', rec, 'state', 'lost', 'finished_at', finished_at, 'failure', 'unavailable')
redis.call('ZADD', KEYS[5], finished_at, member)
redis.call('PEXPIRE', rec, retention_ms)
redis.call('PEXPIRE', jnl, retention_ms)
redis.call('SREM', active, member)
redis.call('DEL', lease)
return 1
"""

# Drop the answers of finished jobs (ARGV[3..], from the `finished` index) that ended before
# ARGV[2]: their ids go to `remembered` (lost ones are forgotten). A remembered id keeps its
# record, marked not kept and without expiry, as SQLite and memory keep it: `GET /jobs/{id}`
# still shows it, and its fingerprint still tells a different request (422) from a repeat.
PRUNE = """
local prefix, horizon, dropped = ARGV[1], tonumber(ARGV[2]), 0
for i = 3, #ARGV do
  local member = ARGV[i]
  local rec = prefix .. ':rec:' .. member
  local state = redis.call('HGET', rec, 'state')
  local finished = tonumber(redis.call('HGET', rec, 'finished_at') or '')
  if state == 'succeeded' or state == 'failed' or state == 'lost' then
    if finished and finished < horizon then
      redis.call('DEL', prefix .. ':jnl:' .. member)
      redis.call('ZREM', prefix .. ':idx', member)
      if state ~= 'lost' then
        redis.call('HSET', rec, 'kept', '0')
        redis.call('PERSIST', rec)
        redis.call('ZADD', prefix .. ':remembered', finished, member)
      else
        redis.call('DEL', rec)
      end
      dropped = dropped + 1
    end
  end
  redis.call('ZREM', prefix .. ':finished', member)
end
return dropped
"""

# Forget the oldest remembered ids beyond the newest ARGV[2], at most ARGV[3] of them a call,
# with their records.
FORGET = """
local prefix, keep, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local remembered = prefix .. ':remembered'
local n = math.min(redis.call('ZCARD', remembered) - keep, most)
if n <= 0 then return 0 end
local old = redis.call('ZRANGE', remembered, 0, n - 1)
for _, member in ipairs(old) do
  redis.call('DEL', prefix .. ':rec:' .. member)
  redis.call('ZREM', remembered, member)
end
return #old
"""

RENEW = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
return 1
"""


GAP = -2
"""The answer of APPEND and FINISH to entries that were to go past the journal's end."""
SUPERSEDED = -3
"""The answer of APPEND and FINISH when the record is no longer this run's to write."""


def _fail(calls: list[_ScriptCall], exc: BaseException) -> None:
    for *_, future, _ in calls:
        if not future.done():
            future.set_exception(exc)


@functools.cache
def _reply_errors() -> tuple[type[Exception], ...]:
    """What a failed script call's reply can be (redis is imported on first use)."""
    from redis.exceptions import RedisError

    return RedisError, ReplyError


def _answer(call: _ScriptCall, reply: Any) -> None:
    *_, future, what = call
    if future.done():
        return
    if isinstance(reply, _reply_errors()):
        future.set_exception(StoreUnavailable(f"the job store (Redis) failed to {what}: {reply}"))
    elif reply == GAP:
        future.set_exception(
            WriteRefused(
                f"the job store (Redis) refused to {what}: the entries were to go past the end "
                "of the journal (an earlier write is missing)"
            )
        )
    elif reply == SUPERSEDED:
        future.set_exception(
            WriteRefused(
                f"the job store (Redis) refused to {what}: the job was marked lost, or claimed "
                "again, meanwhile (this run's lease ran out)"
            )
        )
    else:
        future.set_result(reply)


def _script_connection(url: str, reply_timeout: float = 5.0) -> RespConnection | None:
    """A lean connection for the script calls to the Redis at `url`.

    None (redis-py's pipeline) for TLS, whose certificate options redis-py handles, and
    without hiredis.
    """
    from redis.asyncio.connection import UnixDomainSocketConnection, parse_url

    options: dict[str, Any] = dict(parse_url(url))
    if not AVAILABLE or options.get("connection_class") not in (None, UnixDomainSocketConnection):
        return None
    return RespConnection(
        host=options.get("host") or "127.0.0.1",
        port=int(options.get("port") or 6379),
        path=options.get("path"),
        db=int(options.get("db") or 0),
        username=options.get("username"),
        password=options.get("password"),
        reply_timeout=reply_timeout,
    )


def _member(key: JobKey) -> str:
    return f"{key.id}:{key.user}"


def _key_of(member: str) -> JobKey:
    return JobKey(member[23:], RequestIdentifier.parse(member[:22]))


def _fields(record: JobRecord) -> list[str]:
    """The record's fields as name, value, name, value... (enum values read as `_value_`:
    `.value` is a Python-level descriptor, and this runs twice a job)."""
    started, finished = record.started_at, record.finished_at
    success, body, failure = record.success, record.body, record.failure
    return [
        "name", record.name,
        "fingerprint", record.fingerprint,
        "state", record.state._value_,
        "node", record.node,
        "created_at", repr(record.created_at),
        "started_at", "" if started is None else repr(started),
        "finished_at", "" if finished is None else repr(finished),
        "success", "" if success is None else success._value_,
        "body", "" if body is None else body._value_,
        "failure", "" if failure is None else failure._value_,
    ]  # fmt: skip


def _record(key: JobKey, raw: dict[str, str]) -> JobRecord:
    def number(name: str) -> float | None:
        value = raw.get(name, "")
        return float(value) if value else None

    return JobRecord(
        key,
        raw.get("name", ""),
        raw.get("fingerprint", ""),
        JobState(raw.get("state", "queued")),
        int(raw.get("run", "1")),
        raw.get("node", ""),
        number("created_at") or 0.0,
        number("started_at"),
        number("finished_at"),
        ResponseSuccess(raw["success"]) if raw.get("success") else None,
        Body(raw["body"]) if raw.get("body") else None,
        ResponseFailure(raw["failure"]) if raw.get("failure") else None,
        kept=raw.get("kept", "1") != "0",
    )


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisStore(Store):
    """Records, journals, claims and leases in Redis, for several gearjobs processes.

    `lease` seconds: how long a node's claim on a queued or running job lasts without renewal
    (it renews every third of that); a job whose node stopped renewing is marked lost by the
    next node that looks, within about `lease` seconds. `retention` is applied by `finish` as
    key expiry; `prune` trims the remembered ids and the listing index.
    """

    live_journal = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        lease: float = 10.0,
        retention: float = 24 * 3600.0,
        prefix: str = "gearjobs",
        block: float = 1.0,
        reply_timeout: float = 5.0,
    ) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - the [redis] extra is missing
            raise GearjobsError(
                "the Redis store needs redis-py: pip install 'gearjobs[redis]'"
            ) from exc
        self.url = url
        self._shown = redacted(url)
        """The URL as messages show it (without its password)."""
        self.lease = lease
        self.retention = retention
        self.prefix = prefix
        self.block = block
        # Typed loosely: redis-py's asyncio client is typed for both sync and async use.
        self._redis: Any = aioredis.Redis.from_url(
            url, decode_responses=False, socket_connect_timeout=2, health_check_interval=5
        )
        self.reply_timeout = reply_timeout
        """Seconds without a word from Redis while script calls wait before they fail."""
        self._scripts = _script_connection(url, reply_timeout)
        """The connection for script calls (see `_pipeline`); None: redis-py's pipeline (TLS)."""
        self._claim = self._redis.register_script(CLAIM)
        self._append = self._redis.register_script(APPEND)
        self._finish = self._redis.register_script(FINISH)
        self._update = self._redis.register_script(UPDATE)
        self._lose = self._redis.register_script(LOSE)
        self._renew = self._redis.register_script(RENEW)
        self._prune = self._redis.register_script(PRUNE)
        self._forget = self._redis.register_script(FORGET)
        self._pending: list[_ScriptCall] = []
        """Script calls of this loop turn, sent together in the next (see `_eval`)."""
        self._sending: asyncio.Handle | None = None
        self._senders: set[asyncio.Task[None]] = set()
        self._held: dict[str, str] = {}  # member -> node, for the leases this process renews
        self._runs: dict[str, int] = {}  # member -> run, for the jobs this process claimed
        self._keeper: asyncio.Task[None] | None = None
        self._take = self._redis.register_script(TAKE)
        self._release = self._redis.register_script(RELEASE)
        self._name: NodeName | None = None
        self._name_keeper: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"RedisStore({self._shown!r})"

    def check_ready(self, node: str | None = None) -> None:
        """Raise GearjobsError now if Redis does not answer a PING (within two seconds to
        connect and the reply timeout to answer), or NameTaken if a live process serves as
        `node` (waiting a few seconds for the name of a process that crashed to expire)."""
        import redis
        from redis.exceptions import RedisError

        client = redis.Redis.from_url(
            self.url, socket_connect_timeout=2, socket_timeout=self.reply_timeout
        )
        try:
            client.ping()
            if node is not None:
                self._node_name(node).take_now(client)
        except (RedisError, OSError) as exc:
            raise GearjobsError(f"cannot reach the Redis store at {self._shown}: {exc}") from exc
        finally:
            client.close()

    def _node_name(self, node: str) -> NodeName:
        if self._name is None or self._name.node != node:
            self._name = NodeName(
                self.prefix,
                node,
                where=f"the Redis store at {self._shown}",
                beat=min(NAME_BEAT, self.lease / 3),
            )
        return self._name

    def _script(self, script: Any, what: str) -> Callable[..., Awaitable[Any]]:
        """`script` called as `run(keys=..., args=...)`, its errors those of `_call`."""

        async def run(*, keys: list[str], args: list[Any]) -> Any:
            return await self._call(what, functools.partial(script, keys=keys, args=args))

        return run

    async def take_name(self, node: str) -> None:
        name = self._node_name(node)
        await name.take(self._script(self._take, "take the node name"))
        if self._name_keeper is None:
            keep = name.keep(self._script(self._take, "renew the node name"))
            self._name_keeper = asyncio.create_task(keep, name="gearjobs-node-name")

    async def release_name(self, node: str) -> None:
        name = self._name
        if name is None or name.node != node:
            return
        if self._name_keeper is not None:
            self._name_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._name_keeper
            self._name_keeper = None
        await name.release(self._script(self._release, "release the node name"))

    @property
    def _expiry_ms(self) -> int:
        """Finished records expire on their own well after retention: `prune` normally drops
        their answers (keeping their ids) first; expiry only bounds memory if nothing prunes."""
        return int((2 * self.retention + 3600) * 1000)

    # Keys

    def _job_keys(self, member: str, last: str) -> list[str]:
        """The keys of the claim and final-write scripts; they differ in the last one."""
        prefix = self.prefix
        return [
            f"{prefix}:rec:{member}",
            f"{prefix}:jnl:{member}",
            f"{prefix}:remembered",
            f"{prefix}:active",
            f"{prefix}:lease:{member}",
            f"{prefix}:{last}",
        ]

    def _k(self, kind: str, key: JobKey | None = None) -> str:
        if key is None:
            return f"{self.prefix}:{kind}"
        return f"{self.prefix}:{kind}:{_member(key)}"

    async def _call(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError, TimeoutError

        try:
            return await work()
        except (RedisConnectionError, TimeoutError, OSError) as exc:
            raise StoreUnavailable(
                f"the job store (Redis at {self._shown}) is unreachable: {exc}"
            ) from exc
        except RedisError as exc:
            raise StoreUnavailable(f"the job store (Redis) failed to {what}: {exc}") from exc

    def _eval(
        self, script: Any, keys: list[str], args: list[Any], what: str
    ) -> asyncio.Future[Any]:
        """Run a Lua script, in one pipeline with the other calls of this loop turn.

        Every job makes two or three script calls; sent one by one, redis-py's own work per
        command (pool, health check, timeout, parsing) cost more than Redis did. Calls made
        during one turn of the event loop go in one pipeline (not a transaction: each script
        is atomic on its own) in the next.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, len(keys), [*keys, *args], future, what))
        if self._sending is None:
            self._sending = loop.call_soon(self._send_pending)
        return future

    def _send_pending(self) -> None:
        self._sending = None
        calls, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(calls))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _send(self, calls: list[_ScriptCall]) -> None:
        from redis.exceptions import NoScriptError

        try:
            replies = await self._call("send scripts", lambda: self._pipeline(calls))
        except BaseException as exc:
            _fail(calls, exc)
            if not isinstance(exc, Exception):
                raise
            return
        missing = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError) or (
                isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT")
            ):
                missing.append(call)
            else:
                _answer(call, reply)  # what ran is answered now, whatever happens next
        if not missing:
            return
        try:  # the server lost its scripts (a restart, SCRIPT FLUSH): load them, send again
            for script in {id(call[0]): call[0] for call in missing}.values():
                load = functools.partial(self._redis.script_load, script.script)
                script.sha = await self._call("load a script", load)
            replies = await self._call("send scripts", lambda: self._pipeline(missing))
        except BaseException as exc:
            _fail(missing, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for call, reply in zip(missing, replies, strict=True):
            _answer(call, reply)

    async def _pipeline(self, calls: list[_ScriptCall]) -> Any:
        if self._scripts is not None:
            commands = [("EVALSHA", script.sha, n, *args) for script, n, args, *_ in calls]
            return await self._scripts.execute(commands)
        pipe = self._redis.pipeline(transaction=False)
        for script, numkeys, keys_and_args, _, _ in calls:
            pipe.evalsha(script.sha, numkeys, *keys_and_args)
        return await pipe.execute(raise_on_error=False)

    # Life cycle

    async def open(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_leases(), name="gearjobs-leases")

    async def close(self) -> None:
        if self._name is not None:
            with contextlib.suppress(StoreUnavailable):  # then it expires within seconds
                await self.release_name(self._name.node)
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        if self._scripts is not None:
            self._scripts.close()
        await self._redis.aclose()

    async def ping(self) -> None:
        await self._call("answer a ping", self._redis.ping)

    async def _keep_leases(self) -> None:
        """Renew this process's leases; mark the jobs of nodes that stopped renewing lost."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.renew()
                await self.reap()
            except Exception as exc:
                logger.warning("lease upkeep failed: %s", exc)

    async def renew(self) -> None:
        """Extend the leases of the jobs this process holds."""
        by_node: dict[str, list[str]] = {}
        for member, node in self._held.items():
            by_node.setdefault(node, []).append(f"{self.prefix}:lease:{member}")
        for node, keys in by_node.items():
            renew = functools.partial(self._renew, keys=keys, args=[node, int(self.lease * 1000)])
            await self._call("renew leases", renew)

    async def reap(self, now: float | None = None) -> int:
        """Mark lost every queued or running job whose lease ran out; return how many."""
        members = await self._call(
            "list active jobs", lambda: self._redis.smembers(self._k("active"))
        )
        lost = 0
        for raw in members:
            member = raw.decode()
            if member in self._held:
                continue
            lost += await self._mark_lost(member, "", now)
        return lost

    async def _mark_lost(self, member: str, node: str, now: float | None) -> int:
        key = _key_of(member)
        payload = encode_entry(lost_entry())[1]
        result = await self._call(
            "mark a job lost",
            lambda: self._lose(
                keys=[
                    self._k("rec", key),
                    self._k("jnl", key),
                    self._k("lease", key),
                    self._k("active"),
                    self._k("finished"),
                ],
                args=[
                    member,
                    repr(time.time() if now is None else now),
                    payload,
                    node,
                    self._expiry_ms,
                ],
            ),
        )
        return int(result)

    # Claims and records

    async def claim(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult:
        key = record.key
        member = _member(key)
        args: list[Any] = [
            member,
            record.fingerprint,
            "" if replace_run is None else str(replace_run),
            int(self.lease * 1000),
            record.node,
            repr(record.created_at),
            *_fields(record),
        ]
        keys = self._job_keys(member, "idx")
        reply = await self._eval(self._claim, keys, args, "claim an id")
        words = [part.decode() if isinstance(part, bytes) else str(part) for part in reply]
        if words and words[0] == "__claimed__":
            record.run = int(words[1])
            self._held[member] = record.node
            self._runs[member] = record.run
            return CLAIMED
        if words and words[0] == "__remembered__":
            return ClaimResult(False, self._tombstone(key))
        return ClaimResult(False, _record(key, _pairs(words)))

    def _tombstone(self, key: JobKey) -> JobRecord:
        return JobRecord(key, "", "", JobState.SUCCEEDED, kept=False)

    async def get(self, key: JobKey) -> JobRecord | None:
        raw = await self._call("read a record", lambda: self._redis.hgetall(self._k("rec", key)))
        if raw:
            return _record(key, {k.decode(): v.decode() for k, v in raw.items()})
        score = await self._call(
            "read remembered ids", lambda: self._redis.zscore(self._k("remembered"), _member(key))
        )
        return None if score is None else self._tombstone(key)

    async def update(self, record: JobRecord) -> None:
        await self._eval(
            self._update, [self._k("rec", record.key)], [record.run, *_fields(record)],
            "update a record",
        )  # fmt: skip

    # Journals

    async def append(
        self, key: JobKey, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        # The run this process claimed is known: no round trip to read it before each append.
        run = self._runs.get(_member(key))
        if run is None:
            stored = await self._call(
                "read a record", lambda: self._redis.hget(self._k("rec", key), "run")
            )
            run = int(stored or 0)
        await self._append_run(key, run, entries, start)

    async def _append_run(
        self, key: JobKey, run: int, entries: Sequence[Entry], start: int | None = None
    ) -> None:
        flat: list[Any] = [run, "" if start is None else start]
        for entry in entries:
            flat += list(encode_entry(entry))
        await self._eval(
            self._append, [self._k("rec", key), self._k("jnl", key)], flat, "append to a journal"
        )

    async def finish(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        await self.finish_soon(record, entries, start=start)

    def finish_soon(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> asyncio.Future[Any]:
        # The script call is queued here, in order with later calls: no task a job.
        key = record.key
        member = _member(key)
        fields = _fields(record)
        args: list[Any] = [
            member,
            record.run,
            self._expiry_ms,
            repr(time.time() if record.finished_at is None else record.finished_at),
            record.node,
            len(fields) // 2,
            "" if start is None else start,
            *fields,
        ]
        self._held.pop(member, None)  # no lease to renew from now on, no more appends
        self._runs.pop(member, None)
        for entry in entries:
            args += list(encode_entry(entry))
        keys = self._job_keys(member, "finished")
        return self._eval(self._finish, keys, args, "record an answer")

    async def read(self, key: JobKey, offset: int = 0, limit: int = 1024) -> list[Entry]:
        rows = await self._call(
            "read a journal",
            lambda: self._redis.xrange(self._k("jnl", key), min=f"0-{offset + 1}", count=limit),
        )
        return [decode_entry(f[b"k"].decode(), f[b"p"]) for _, f in rows]

    async def follow_batches(
        self, key: JobKey, offset: int = 0, *, poll: float = 0.05
    ) -> AsyncGenerator[list[Entry], None]:
        """Read the journal from `offset`, waiting for new entries with XREAD BLOCK."""
        journal = self._k("jnl", key)
        while True:
            xread = functools.partial(
                self._redis.xread, {journal: f"0-{offset}"}, count=512, block=int(self.block * 1000)
            )
            reply = await self._call("follow a journal", xread)
            if reply:
                rows = reply[0][1]
                batch = [decode_entry(f[b"k"].decode(), f[b"p"]) for _, f in rows]
                offset += len(batch)
                ended = next((i for i, e in enumerate(batch) if _ends(e)), None)
                if ended is not None:
                    yield batch[: ended + 1]
                    return
                yield batch
                continue
            record = await self.get(key)
            if record is None or not record.kept or record.state.finished:
                tail = await self.read(key, offset)
                if tail:
                    yield tail
                return

    # Lists, recovery, retention

    async def list_records(
        self,
        *,
        user: str | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[JobRecord]:
        found: list[JobRecord] = []
        high: float | str = "+inf" if before is None else before[0]
        skip = 0
        while len(found) < limit:
            scan = functools.partial(
                self._redis.zrevrangebyscore,
                self._k("idx"),
                high,
                "-inf",
                start=skip,
                num=200,
                withscores=True,
            )
            page = await self._call("list jobs", scan)
            if not page:
                break
            skip += len(page)
            members = [m.decode() for m, _ in page]
            pipe = self._redis.pipeline(transaction=False)
            for member in members:
                pipe.hgetall(f"{self.prefix}:rec:{member}")
            raws = await self._call("list jobs", pipe.execute)
            for member, raw in zip(members, raws, strict=True):
                if not raw:
                    continue
                key = _key_of(member)
                rec = _record(key, {k.decode(): v.decode() for k, v in raw.items()})
                if before is not None and (rec.created_at, str(key.id)) >= before:
                    continue
                if user is not None and key.user != user:
                    continue
                if (state is not None and rec.state is not state) or (
                    name is not None and rec.name != name
                ):
                    continue
                found.append(rec)
            if len(page) < 200:
                break
        found.sort(key=lambda r: (r.created_at, str(r.key.id)), reverse=True)
        return found[:limit]

    async def recover(self, node: str, now: float) -> list[JobRecord]:
        members = await self._call(
            "list active jobs", lambda: self._redis.smembers(self._k("active"))
        )
        lost = []
        for raw in members:
            member = raw.decode()
            if await self._mark_lost(member, node, now):
                record = await self.get(_key_of(member))
                if record is not None:
                    lost.append(record)
        return lost

    async def prune(self, *, now: float, retention: float, remember: int) -> int:
        horizon = now - retention
        dropped = 0
        while True:  # in batches, so other requests interleave with pruning
            scan = functools.partial(
                self._redis.zrangebyscore,
                self._k("finished"),
                "-inf",
                f"({horizon}",
                start=0,
                num=PRUNE_BATCH,
            )
            members = [m.decode() for m in await self._call("prune", scan)]
            if not members:
                break
            args = [self.prefix, repr(horizon), *members]
            dropped += int(await self._call("prune", functools.partial(self._prune, args=args)))
        forget = functools.partial(self._forget, args=[self.prefix, remember, PRUNE_BATCH])
        while True:
            forgotten = int(await self._call("prune remembered ids", forget))
            dropped += forgotten
            if forgotten < PRUNE_BATCH:
                return dropped


def _ends(entry: Entry) -> bool:
    return is_terminal(entry)
