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
    __slots__ = ("future", "replies", "size")

    def __init__(self, size: int, future: asyncio.Future[list[Any]]) -> None:
        self.size = size
        self.replies: list[Any] = []
        self.future = future


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[_Batch] = collections.deque()
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
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
        while self.waiting:
            batch = self.waiting.popleft()
            if not batch.future.done():
                batch.future.set_exception(self.lost)


class RespConnection:
    """Sends batches of commands on one connection; each batch gets its replies, in order.

    Connects on first use and again after the connection is lost (the batches in flight then
    fail with ConnectionError; nothing is resent, since a script may have run). Error replies
    come back as ReplyError values among the replies, not raised.
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
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.db = db
        self.username = username
        self.password = password
        self.connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send `commands` in one write; their replies, in order."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        return await self._send(protocol, commands)

    @staticmethod
    def _send(protocol: _Protocol, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
        transport = protocol.transport
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if transport is None or protocol.lost is not None:
            future.set_exception(protocol.lost or ConnectionError("not connected to Redis"))
            return future
        data = b"".join([hiredis.pack_command(tuple(c)) for c in commands])  # may raise
        protocol.waiting.append(_Batch(len(commands), future))
        transport.write(data)
        return future

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol  # another caller connected meanwhile
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.connect_timeout):
                if self.path is not None:
                    _, protocol = await loop.create_unix_connection(_Protocol, self.path)
                else:
                    _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
                hello: list[list[Any]] = []
                if self.password is not None:
                    user = [self.username] if self.username else []
                    hello.append(["AUTH", *user, self.password])
                if self.db:
                    hello.append(["SELECT", self.db])
                if hello:
                    for reply in await self._send(protocol, hello):
                        if isinstance(reply, ReplyError):
                            if protocol.transport is not None:
                                protocol.transport.close()
                            raise ConnectionError(f"Redis refused the connection: {reply}")
            self._protocol = protocol
            return protocol

    def close(self) -> None:
        """Close the connection; batches still in flight fail."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
