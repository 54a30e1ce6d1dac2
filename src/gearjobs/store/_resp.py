"""One pipelined connection to Redis for the store's script calls, packed and parsed by hiredis.

Every job makes two or three script calls. Through redis-py's pipeline each batch of them took
a connection from the pool, went through retry, timeout and health-check wrappers and a
Python reply parser: more of the store's time than Redis itself. Here a batch is one write on
one connection and its replies are parsed in C as they arrive; batches from several loop
turns are in flight together, answered in order (Redis answers in the order it is asked).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, cast

try:
    import hiredis
except ImportError:  # pragma: no cover - the [redis] extra installs it
    hiredis = None  # type: ignore[assignment]

__all__ = ("AVAILABLE", "ReplyError", "RespConnection")

AVAILABLE = hiredis is not None
"""False without hiredis: the store then sends its script calls through redis-py."""


class ReplyError(Exception):
    """An error reply from Redis (`-ERR ...`, `-NOSCRIPT ...`), given as a batch's reply."""


class _Batch:
    __slots__ = ("future", "replies", "sent_at", "size")

    def __init__(self, size: int, future: asyncio.Future[list[Any]], sent_at: float) -> None:
        self.size = size
        self.replies: list[Any] = []
        self.future = future
        self.sent_at = sent_at


class _Protocol(asyncio.Protocol):
    def __init__(self, reply_timeout: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[_Batch] = collections.deque()
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.lost: Exception | None = None
        self.reply_timeout = reply_timeout
        self.last_reply = 0.0
        """When data last came from Redis (loop time): a slow but answering Redis is alive."""
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes, batch: _Batch) -> None:
        assert self.transport is not None
        self.waiting.append(batch)
        self.transport.write(data)
        if self._watch is None:
            self._watch = asyncio.get_running_loop().call_at(
                batch.sent_at + self.reply_timeout, self._check
            )

    def _check(self) -> None:
        """Nothing came for `reply_timeout` while batches wait: Redis hangs, give it up."""
        self._watch = None
        if not self.waiting:
            return
        since = max(self.waiting[0].sent_at, self.last_reply)
        loop = asyncio.get_running_loop()
        # (uvloop may fire a timer up to a millisecond early: not a reason to look again.)
        if loop.time() - since >= self.reply_timeout - 0.002:
            self.fail(TimeoutError(f"Redis did not answer within {self.reply_timeout:g} s"))
            if self.transport is not None:
                self.transport.abort()
        else:
            self._watch = loop.call_at(since + self.reply_timeout, self._check)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if self._watch is not None:  # batches wait: note that Redis is answering
            self.last_reply = asyncio.get_running_loop().time()
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if not self.waiting:
                    raise ConnectionError("Redis sent a reply nobody asked for")
                batch = self.waiting[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.size:
                    self.waiting.popleft()
                    if not batch.future.done():  # its caller may have been cancelled
                        batch.future.set_result(batch.replies)
        except Exception as exc:  # a protocol error: nothing after it can be trusted
            self.fail(exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc)))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("Redis closed the connection"))

    def fail(self, exc: Exception) -> None:
        if self.lost is None:
            self.lost = exc if isinstance(exc, OSError) else ConnectionError(str(exc))
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self.waiting:
            batch = self.waiting.popleft()
            if not batch.future.done():
                batch.future.set_exception(self.lost)


class RespConnection:
    """Sends batches of commands on one connection; each batch gets its replies, in order.

    Connects on first use and again after the connection is lost: the batches in flight then
    fail with an OSError (ConnectionError, or TimeoutError when no reply came for
    `reply_timeout` seconds) and nothing is resent, since a script may have run. Callers that
    arrive while a connection is being made wait for that one attempt and share its outcome.
    Error replies come back as ReplyError values among the replies, not raised.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 2.0,
        reply_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.db = db
        self.username = username
        self.password = password
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._closed = False

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send `commands` in one write; their replies, in order."""
        if self._closed:
            raise ConnectionError("the connection to Redis was closed")
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connected()
        return await self._send(protocol, commands)

    @staticmethod
    def _send(protocol: _Protocol, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if protocol.transport is None or protocol.lost is not None:
            future.set_exception(protocol.lost or ConnectionError("not connected to Redis"))
            return future
        data = b"".join([hiredis.pack_command(tuple(c)) for c in commands])  # may raise
        protocol.send(data, _Batch(len(commands), future, loop.time()))
        return future

    async def _connected(self) -> _Protocol:
        if self._closed:
            raise ConnectionError("the connection to Redis was closed")
        if self._connecting is None:
            attempt = asyncio.ensure_future(self._connect())
            self._connecting = attempt
            attempt.add_done_callback(self._connect_done)
        # Shielded: a caller that gives up does not cancel the attempt the others wait for.
        return await asyncio.shield(self._connecting)

    def _connect_done(self, attempt: asyncio.Future[_Protocol]) -> None:
        self._connecting = None  # the next caller after a failure tries again
        if not attempt.cancelled() and attempt.exception() is None:
            protocol = attempt.result()
            if self._closed:  # close() came after the attempt's own last look
                if protocol.transport is not None:
                    protocol.transport.close()
                return
            self._protocol = protocol
        elif not attempt.cancelled():
            attempt.exception()  # retrieved: the callers waiting for it got it

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        transport: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.path is not None:
                    transport, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self.reply_timeout), self.path
                    )
                else:
                    transport, protocol = await loop.create_connection(
                        lambda: _Protocol(self.reply_timeout), self.host, self.port
                    )
                hello: list[list[Any]] = []
                if self.password is not None:
                    user = [self.username] if self.username else []
                    hello.append(["AUTH", *user, self.password])
                if self.db:
                    hello.append(["SELECT", self.db])
                if hello:
                    for reply in await self._send(protocol, hello):
                        if isinstance(reply, ReplyError):
                            raise ConnectionError(f"Redis refused the connection: {reply}")
        except BaseException:
            if transport is not None:
                transport.close()
            raise
        if self._closed:
            transport.close()
            raise ConnectionError("the connection to Redis was closed")
        return protocol

    def close(self) -> None:
        """Close the connection for good; batches still in flight fail."""
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
