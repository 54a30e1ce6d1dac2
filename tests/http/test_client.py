"""The HTTP client: answers into a Response, and retries that join instead of re-running."""

import asyncio
import io
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from gearjobs.dispatcher import Dispatcher
from gearjobs.http import AsyncClient, Client, ServerUnreachable, create_app
from gearjobs.jobs import (
    ClientResponse,
    RequestIdentifier,
    ResponseFailure,
    ResponseSuccess,
    ResponseWriter,
)
from gearjobs.store import LOST_MESSAGE

from ..proxy import DroppingProxy
from ..servers import ServerProcess
from .conftest import make_registry


class BusyFirst:
    """Answers the first `times` requests with `status` and Retry-After: 0, then serves."""

    def __init__(
        self,
        app: ASGIApp,
        times: int,
        status: int = 429,
        body: bytes = b'{"message":"busy","code":"rate-limit"}',
    ) -> None:
        self.app = app
        self.times = times
        self.status = status
        self.body = body
        self.seen: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append(headers.get(b"x-request-id", b"").decode())
            if self.times > 0:
                self.times -= 1
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status,
                        "headers": [(b"retry-after", b"0"), (b"content-type", b"application/json")],
                    }
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": self.body,
                    }
                )
                return
        await self.app(scope, receive, send)


@pytest.mark.parametrize("status", [429, 503])
async def test_the_client_retries_busy_answers_with_the_same_id(
    dispatcher: Dispatcher, status: int
) -> None:
    app = BusyFirst(create_app(dispatcher, make_registry()), times=2, status=status)
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://127.0.0.1", transport=transport, tries=5) as client:
        response = ClientResponse()
        ident = await client.run("tally", {"key": "busy"}, response)
    assert response.data == {"key": "busy", "value": 1, "node": "test-node"}
    assert len(app.seen) == 3 and len(set(app.seen)) == 1
    assert ident == app.seen[0]


async def test_a_lost_answer_to_a_post_before_anything_was_shown_is_retried(
    dispatcher: Dispatcher,
) -> None:
    """A 503 "lost" (a joined job whose node died) before the answer began: the retry's POST
    runs the job again, and its answer is the answer. (Only a GET, or a stream that began,
    takes the lost answer as final.)"""
    lost = json.dumps({"message": LOST_MESSAGE, "code": "unavailable"}).encode()
    app = BusyFirst(create_app(dispatcher, make_registry()), times=1, status=503, body=lost)
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://127.0.0.1", transport=transport, tries=5) as client:
        response = ClientResponse()
        await client.run("echo", {"x": 1}, response)
    assert response.data == {"echo": {"x": 1}}
    assert len(app.seen) == 2 and app.seen[0] == app.seen[1]


async def test_the_last_busy_answer_is_the_answer_when_tries_run_out(
    dispatcher: Dispatcher,
) -> None:
    app = BusyFirst(create_app(dispatcher, make_registry()), times=10)
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://127.0.0.1", transport=transport, tries=3) as client:
        response = ClientResponse()
        await client.run("echo", {}, response)
    assert len(app.seen) == 3
    assert response.error is not None
    assert response.error.response_failure() is ResponseFailure.RATE_LIMIT


async def test_the_client_reads_every_kind_of_answer(dispatcher: Dispatcher) -> None:
    transport = httpx.ASGITransport(app=create_app(dispatcher, make_registry()))
    async with AsyncClient("http://127.0.0.1", transport=transport) as client:
        data = ClientResponse()
        await client.run("echo", {"x": 1}, data)
        assert (data.kind, data.data) == (ResponseSuccess.OK, {"echo": {"x": 1}})

        text = ClientResponse()
        await client.run("sleep", {"seconds": 0, "lines": 2}, text)
        assert text.data.getvalue() == b"tick 1\ntick 2\n"

        out = io_response()
        await client.run("count", {"to": 2, "delay": 0}, out)
        # Header names are case-insensitive; HTTP/1.1 servers send them in lower case.
        assert out.pending == {"count-total": "2"}
        assert [json.loads(x) for x in out.printed.getvalue().splitlines()[1:]] == [
            {"n": 1, "progress": 1, "total": 2},
            {"n": 2, "progress": 2, "total": 2},
        ]

        failed = ClientResponse()
        await client.run("fail", {"code": "already-exists", "message": "dup", "data": 3}, failed)
        assert failed.error is not None
        assert failed.error.response_failure() is ResponseFailure.ALREADY_EXISTS
        assert (failed.error.message, failed.error.response_data()) == ("dup", 3)

        nothing = ClientResponse()
        await client.run("accepted-none", {}, nothing)
        assert nothing.kind is ResponseSuccess.ACCEPTED and nothing.error is None


class DropsThenBusy(httpx.AsyncBaseTransport):
    """The real app, but the first answer's body breaks off after its first chunk (as a
    dropped connection does), and every later request gets a 503 asking for an hour's wait."""

    def __init__(self, app: ASGIApp) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.answered = 0
        self.busy = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.answered += 1
        if self.answered > 1:
            self.busy.set()
            body = {"message": "busy", "code": "unavailable"}
            return httpx.Response(503, headers={"Retry-After": "3600"}, json=body)
        answer = await self.inner.handle_async_request(request)
        return httpx.Response(
            answer.status_code, headers=answer.headers, stream=FirstChunkThenDrop(answer.stream)
        )


class FirstChunkThenDrop(httpx.AsyncByteStream):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield chunk
            break
        raise httpx.ReadError("connection reset by peer")


async def test_a_stop_while_waiting_to_retry_keeps_what_the_stream_had_shown(
    dispatcher: Dispatcher,
) -> None:
    """The client keeps a text stream's last newline back (it may begin the error marker);
    stopped while it waits between tries, that newline is the Response's, as it is when
    stopped during a read."""
    transport = DropsThenBusy(create_app(dispatcher, make_registry()))
    out = io_response()
    async with AsyncClient("http://127.0.0.1", transport=transport, tries=5) as client:
        running = asyncio.create_task(client.run("sleep", {"seconds": 0, "lines": 2}, out))
        await asyncio.wait_for(transport.busy.wait(), 30)  # now waiting an hour to retry
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert out.printed.getvalue() == "tick 1\ntick 2\n"


class PrintedResponse(ClientResponse):
    """A ClientResponse that prints to a StringIO the test reads back."""

    def __init__(self) -> None:
        self.printed = io.StringIO()
        super().__init__(output=self.printed, gather=False)


def io_response() -> PrintedResponse:
    return PrintedResponse()


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess("--examples", "--store", f"sqlite:///{tmp_path}/c.db", cwd=tmp_path) as s:
        yield s


def test_a_dropped_stream_is_resumed_by_joining_and_nothing_is_seen_twice(
    real_server: ServerProcess,
) -> None:
    with DroppingProxy(real_server.port, cut=600) as proxy:
        ident = RequestIdentifier.new()
        response = io_response()
        with Client(f"http://127.0.0.1:{proxy.port}", tries=4) as client:
            client.run("count", {"to": 200, "delay": 0.001}, response, id=ident)
        assert proxy.connections >= 2, "the first connection was cut"
    events = [json.loads(x) for x in response.printed.getvalue().splitlines()[1:]]
    assert events == [{"n": n, "progress": n, "total": 200} for n in range(1, 201)]
    record = httpx.get(f"{real_server.url}/jobs/{ident}").json()
    assert record["run"] == 1


def test_the_sync_client_gives_up_after_its_tries(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with Client(f"http://127.0.0.1:{port}", tries=2) as client, pytest.raises(ServerUnreachable):
        client.run("echo", {}, ClientResponse())


class _FirstTick(ClientResponse):
    """Gathers a text stream and says when its first bytes came."""

    def __init__(self) -> None:
        super().__init__()
        self.began = threading.Event()

    def success_with_write(
        self, kind: ResponseSuccess, flush: bool, structured: bool
    ) -> ResponseWriter:
        writer = super().success_with_write(kind, flush, structured)
        began = self.began

        class Signalling:
            def write(self, data: Any) -> None:
                writer.write(data)
                began.set()

        return Signalling()


PID_JOBS = """
import asyncio, os
from gearjobs.jobs import JobSet, Params, Response, ResponseSuccess

jobs = JobSet()

@jobs.job("pid-lines")
async def pid_lines(params: Params, response: Response) -> None:
    writer = response.success_with_write(ResponseSuccess.OK, True, False)
    for i in range(params.integer("lines", 1)):
        writer.write(f"process {os.getpid()} line {i}\\n")
        await asyncio.sleep(0.5)
"""


def test_a_stream_whose_run_was_lost_is_not_spliced_onto_a_new_run_that_differs(
    tmp_path: Path,
) -> None:
    """After kill -9 mid-stream, the client's retry ran the lost job again and skipped as
    many bytes of the new run's stream as the old one had delivered: two runs' output in
    one answer, reported as a success. Now the new run's stream goes on only if its
    beginning is what was shown; this one (each line names its process) differs, and the
    answer fails instead. (A run that writes the same goes on: see the CLI's crash test.)"""
    (tmp_path / "pid_jobs.py").write_text(PID_JOBS)
    args = ("--app", "pid_jobs:jobs", "--store", f"sqlite:///{tmp_path}/c.db")
    first = ServerProcess(*args, cwd=tmp_path).start()
    ident = RequestIdentifier.new()
    response = _FirstTick()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with Client(first.url, tries=10) as client:
                client.run("pid-lines", {"lines": 8}, response, id=ident)
        except BaseException as exc:  # reported by the test's thread below
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert response.began.wait(30), "the stream did not begin"
        first.kill()
        with ServerProcess(*args, cwd=tmp_path, port=first.port) as second:
            thread.join(60)
            assert not thread.is_alive() and not failures, failures
            record = httpx.get(f"{second.url}/jobs/{ident}").json()
    finally:
        first.kill()
        thread.join(60)
    assert response.error is not None
    assert response.error.response_failure() is ResponseFailure.ERROR
    assert "differs" in response.error.message
    shown = response.data.getvalue().decode().splitlines()
    assert first.process is not None
    assert shown and {line.split()[1] for line in shown} == {str(first.process.pid)}
    assert record["run"] == 2  # it ran again, as a lost job does when its request comes again
