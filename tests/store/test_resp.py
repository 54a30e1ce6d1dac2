"""The Redis store's connection for script calls, against a real redis-server."""

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gearjobs.jobs import ResponseSuccess
from gearjobs.store import Body, JobState, RedisStore, Succeeded
from gearjobs.store._redis import _script_connection
from gearjobs.store._resp import ReplyError, RespConnection

from ..redis_server import RedisServer
from .test_redis import job


def key() -> str:
    return f"resp:{uuid.uuid4().hex}"


async def test_batches_in_flight_together_get_their_own_replies_in_order(
    redis_server: RedisServer,
) -> None:
    connection = RespConnection(port=redis_server.port)
    try:
        k = key()
        batches = [[("INCR", k), ("GET", k)] for _ in range(50)]
        answers = await asyncio.gather(*(connection.execute(b) for b in batches))
        assert answers == [[n, str(n).encode()] for n in range(1, 51)]
    finally:
        connection.close()


async def test_an_error_reply_is_a_value_and_the_batch_goes_on(redis_server: RedisServer) -> None:
    connection = RespConnection(port=redis_server.port)
    try:
        k = key()
        replies = await connection.execute([("SET", k, "a"), ("INCR", k), ("GET", k)])
        assert replies[0] == b"OK"
        assert isinstance(replies[1], ReplyError) and "not an integer" in str(replies[1])
        assert replies[2] == b"a"
    finally:
        connection.close()


async def test_a_cancelled_caller_does_not_shift_the_replies_of_the_next(
    redis_server: RedisServer,
) -> None:
    connection = RespConnection(port=redis_server.port)
    try:
        k = key()
        waiting = asyncio.ensure_future(connection.execute([("BLPOP", k, 0)]))
        await asyncio.sleep(0)  # let it send
        waiting.cancel()
        after = asyncio.ensure_future(connection.execute([("PING",)]))
        other = redis.Redis(port=redis_server.port)
        other.rpush(k, "x")  # unblocks the BLPOP, whose reply nobody reads now
        other.close()
        assert await after == [b"PONG"]
    finally:
        connection.close()


async def test_a_lost_connection_fails_the_batches_in_flight_then_connects_again(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path).start()
    connection = RespConnection(port=server.port)
    try:
        assert await connection.execute([("PING",)]) == [b"PONG"]
        blocked = asyncio.ensure_future(connection.execute([("BLPOP", key(), 0)]))
        await asyncio.sleep(0)
        server.stop()
        with pytest.raises(ConnectionError):
            await blocked  # it may have run: it is not sent again
        with pytest.raises(OSError, match=r"Connect call failed|refused"):
            await connection.execute([("PING",)])
        server.start()
        assert await connection.execute([("PING",)]) == [b"PONG"]
    finally:
        connection.close()
        server.stop()


async def test_password_and_database_from_the_url(tmp_path: Path) -> None:
    with RedisServer(tmp_path, None, "--requirepass", "s3cret") as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        connection = _script_connection(url)
        assert connection is not None
        try:
            k = key()
            assert await connection.execute([("SET", k, "v")]) == [b"OK"]
            in_db3 = redis.Redis(port=server.port, password="s3cret", db=3)
            assert in_db3.get(k) == b"v"
            in_db3.close()
        finally:
            connection.close()
        wrong = _script_connection(f"redis://:wrong@127.0.0.1:{server.port}/0")
        assert wrong is not None
        with pytest.raises(ConnectionError, match="refused"):
            await wrong.execute([("PING",)])
        wrong.close()


async def test_a_unix_socket(tmp_path: Path) -> None:
    socket = tmp_path / "redis.sock"
    with RedisServer(tmp_path, None, "--unixsocket", str(socket)):
        connection = _script_connection(f"unix://{socket}?db=1")
        assert connection is not None and connection.path == str(socket)
        try:
            assert await connection.execute([("PING",)]) == [b"PONG"]
        finally:
            connection.close()


def test_tls_goes_through_redis_py() -> None:
    assert _script_connection("rediss://127.0.0.1:6380/0") is None


async def test_the_store_without_the_lean_connection_claims_and_finishes(
    redis_server: RedisServer,
) -> None:
    """The path for TLS and for installs without hiredis: redis-py's pipeline."""
    store = RedisStore(redis_server.url, prefix=f"p{uuid.uuid4().hex[:12]}")
    store._scripts = None
    await store.open()
    try:
        record = job("a")
        assert (await store.claim(record)).claimed
        await store._redis.script_flush()  # and it loads scripts the server forgot
        record.state = JobState.SUCCEEDED
        await store.finish(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 7)])
        stored = await store.get(record.key)
        assert stored is not None and stored.state is JobState.SUCCEEDED
        assert [e.data for e in await store.read(record.key)] == [7]  # type: ignore[union-attr]
    finally:
        await store.close()


@contextlib.contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """redis-server stopped (SIGSTOP): its sockets stay open, nothing answers."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


async def test_a_redis_that_stops_answering_fails_the_calls_in_flight(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    connection = RespConnection(port=server.port, reply_timeout=0.3)
    try:
        assert await connection.execute([("PING",)]) == [b"PONG"]
        with frozen(server):
            calls = [connection.execute([("PING",)]) for _ in range(3)]
            # (wait_for: without the reply timeout this would hang, not fail)
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
            assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
        assert await connection.execute([("PING",)]) == [b"PONG"]  # on a new connection
    finally:
        connection.close()
        server.stop()


async def test_callers_share_one_attempt_to_connect_and_no_socket_is_left_open(
    tmp_path: Path,
) -> None:
    with RedisServer(tmp_path, None, "--requirepass", "s3cret") as server:
        connection = RespConnection(port=server.port, password="s3cret", connect_timeout=0.3)
        with frozen(server):  # the TCP connection is made; the AUTH gets no answer
            calls = [connection.execute([("PING",)]) for _ in range(5)]
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
        assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
        assert len({id(o) for o in outcomes}) == 1, "one attempt, its outcome for all"
        assert await connection.execute([("PING",)]) == [b"PONG"]
        connection.close()
        with pytest.raises(ConnectionError, match="closed"):
            await connection.execute([("PING",)])
        checker = redis.Redis(port=server.port, password="s3cret")
        try:
            for _ in range(100):  # Redis notices closed sockets on its own time: no signal
                if checker.info("clients")["connected_clients"] == 1:  # the checker itself
                    break
                await asyncio.sleep(0.05)
            assert checker.info("clients")["connected_clients"] == 1
        finally:
            checker.close()


async def test_a_slow_server_that_keeps_answering_is_not_cut_off() -> None:
    """Four commands sent at once, answered one every 0.3 s: the last waits 1.2 s, more than
    the reply timeout (0.5 s), but no gap between replies is that long.

    (Redis itself answers all that one read brought at once, so the pace is set by a small
    server of the test's own that speaks the protocol.)
    """

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked = answered = 0
        try:
            while answered < 4:
                asked += (await reader.read(1024)).count(b"PING")
                while answered < asked:
                    await asyncio.sleep(0.3)  # the slow server's pace
                    writer.write(b"+PONG\r\n")
                    answered += 1
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = RespConnection(port=port, reply_timeout=0.5)
    try:
        calls = [connection.execute([("PING",)]) for _ in range(4)]
        assert await asyncio.wait_for(asyncio.gather(*calls), 30) == [[b"PONG"]] * 4
    finally:
        connection.close()
        server.close()
        await server.wait_closed()


async def test_a_close_while_connecting_leaves_no_connection(redis_server: RedisServer) -> None:
    connection = RespConnection(port=redis_server.port)
    made = connection._connect

    async def connect_then_close() -> Any:
        protocol = await made()
        # close() lands after the attempt's own last look, before its outcome is taken.
        asyncio.get_running_loop().call_soon(connection.close)
        return protocol

    connection._connect = connect_then_close  # type: ignore[method-assign]
    with contextlib.suppress(ConnectionError):
        await connection.execute([("PING",)])
    with pytest.raises(ConnectionError, match="closed"):
        await connection.execute([("PING",)])
    assert connection._protocol is None
