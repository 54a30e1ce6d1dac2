"""An audit of the reliability promises (RELIABILITY.md, ../shared/DESIGN.md, ../shared/API.md,
the README's decisions and the issue), against real `gearjobs serve` processes, real SQLite
files, a real redis-server and real HTTP on 127.0.0.1.

The side effects of jobs are counted by a small app of jobs (`AUDIT_JOBS`, loaded with
`--app`) that appends a line to `ledger.txt` in the server's directory when a job starts and
when it ends. The lines are appended by the server's own process with O_APPEND, so they survive
its kill -9: a job that ran twice to completion shows two `end` lines for its id, whatever the
process that ran it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_client

from gearjobs.jobs import RequestIdentifier

from ..rawhttp import post_many
from ..redis_server import RedisServer
from ..servers import ServerProcess

TEXT = {"Accept": "text/plain;stream=true"}
NDJSON = {"Accept": "application/x-ndjson"}
SSE = {"Accept": "text/event-stream"}

AUDIT_JOBS = '''
"""Jobs whose runs leave lines in ledger.txt (in the server's directory)."""

import asyncio
import os

from gearjobs.jobs import JobSet, ResponseSuccess, current_context

jobs = JobSet()
LEDGER = os.path.join(os.getcwd(), "ledger.txt")


def note(event):
    ctx = current_context()
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {ctx.user} {ctx.id} {os.getpid()}\\n".encode())
    finally:
        os.close(fd)


@jobs.job("mark", fast=True)
class Mark:
    """Notes one run and answers with the process that ran it."""

    def __init__(self, params):
        params.only("n")
        self.n = params.integer("n", 0)

    async def execute(self, response):
        note("start")
        note("end")
        response.success_with_data(ResponseSuccess.OK, {"n": self.n, "pid": os.getpid()})


@jobs.job("ledger")
class Ledger:
    """Streams `lines` lines over `seconds`, noting its start and its end."""

    def __init__(self, params):
        params.only("seconds", "lines")
        self.seconds = params.number("seconds", 1, min=0, max=300)
        self.lines = params.integer("lines", 1, min=1, max=1000)

    async def execute(self, response):
        note("start")
        response.write_pending_success("Ledger-Lines", self.lines)
        writer = response.success_with_write(ResponseSuccess.OK, True, False)
        for i in range(1, self.lines + 1):
            await asyncio.sleep(self.seconds / self.lines)
            writer.write(f"line {i}\\n")
        note("end")
'''


# --- helpers -------------------------------------------------------------------------------


def new_id() -> str:
    return str(RequestIdentifier.new())


def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "audit_jobs.py").write_text(AUDIT_JOBS)
    return tmp_path


def ledger(folder: Path) -> Counter[tuple[str, str]]:
    """(event, id) -> how many times, over every process that served from `folder`."""
    path = folder / "ledger.txt"
    if not path.exists():
        return Counter()
    return Counter(
        (event, ident)
        for event, _user, ident, _pid in (line.split() for line in path.read_text().splitlines())
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> float:
    """Poll `condition` until it holds; return how long that took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)  # polling the condition itself: there is no event to wait on
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def leave_queued(url: str, ident: str) -> None:
    """POST a ledger job under `ident` to a server whose slow workers are all busy, and hang
    up before its answer (which would come once it starts): the job stays queued."""
    with contextlib.suppress(httpx.ReadTimeout):
        httpx.post(
            f"{url}/jobs/ledger",
            json={"seconds": 0, "lines": 1},
            headers={"X-Request-Id": ident},
            timeout=httpx.Timeout(5, read=0.3),
        )
    assert record(url, ident)["state"] == "queued"


def record(url: str, ident: str, **kw: Any) -> dict[str, Any]:
    r = httpx.get(f"{url}/jobs/{ident}", timeout=10, **kw)
    assert r.status_code == 200, (r.status_code, r.text)
    body: dict[str, Any] = r.json()
    return body


def replay_headers(response: httpx.Response) -> dict[str, str]:
    """The headers a repeat must give the same (not Date, not Server)."""
    skip = {"date", "server", "connection", "transfer-encoding"}
    return {k: v for k, v in response.headers.items() if k.lower() not in skip}


def is_json_error(response: httpx.Response) -> bool:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("message"), str) and bool(body["message"])


@dataclass
class StreamResult:
    chunks: list[bytes] = field(default_factory=list)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    started: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def stream_in_thread(
    method: str, url: str, *, json_body: Any = None, headers: dict[str, str]
) -> tuple[threading.Thread, StreamResult]:
    result = StreamResult()

    def read() -> None:
        try:
            with httpx.stream(
                method, url, json=json_body, headers=headers, timeout=httpx.Timeout(60)
            ) as answer:
                result.status = answer.status_code
                result.headers = dict(answer.headers)
                for chunk in answer.iter_bytes():
                    result.chunks.append(chunk)
                    result.started.set()
        except httpx.HTTPError as exc:
            result.error = repr(exc)
        finally:
            result.started.set()
            result.ended.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, result


def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while data := sock.recv(65536):
                out += data
        return out


def parse_raw(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# --- kill -9 during a flood of fast jobs --------------------------------------------------

FLOOD = 2500
"""Answers read before the kill."""


# --- kill -9 while streams run ------------------------------------------------------------

RUNNING = {"seconds": 4, "lines": 40}
"""A job that runs at the kill (which comes within a second of its start)."""


def test_kill_9_while_streams_run_replays_finished_answers_with_their_headers_and_loses_the_rest(
    tmp_path: Path,
) -> None:
    folder = app_dir(tmp_path)
    args = (
        "--examples", "--app", "audit_jobs:jobs",
        "--store", f"sqlite:///{folder / 'jobs.db'}",
        "--concurrent", "2",
    )  # fmt: skip
    finished: list[tuple[str, str, dict[str, Any], dict[str, str], httpx.Response]] = []
    with ServerProcess(*args, cwd=folder) as first:
        port = first.port
        cases: list[tuple[str, dict[str, Any], dict[str, str]]] = [
            ("count", {"to": 300, "delay": 0}, NDJSON),
            ("count", {"to": 40, "delay": 0}, SSE),
            ("ledger", {"seconds": 0, "lines": 20}, TEXT),
            ("ledger", {"seconds": 0, "lines": 3}, {}),  # a stream not asked for: 204
            ("fail", {"code": "already-exists", "message": "m", "data": {"x": [1]}}, {}),
            ("mark", {"n": 7}, {}),
        ]
        for name, params, headers in cases:
            ident = new_id()
            r = httpx.post(
                f"{first.url}/jobs/{name}",
                json=params,
                headers={"X-Request-Id": ident, **headers},
                timeout=30,
            )
            finished.append((ident, name, params, headers, r))
        # Two slow workers: one streams a count to a reading client, one runs a ledger job
        # that nobody reads; a third slow job waits in the queue.
        counting = new_id()
        _, count_stream = stream_in_thread(
            "POST",
            f"{first.url}/jobs/count",
            json_body={"to": 1000, "delay": 0.05},
            headers={"X-Request-Id": counting, **NDJSON},
        )
        assert count_stream.started.wait(30)
        running = new_id()
        started = httpx.post(
            f"{first.url}/jobs/ledger", json=RUNNING, headers={"X-Request-Id": running}
        )
        assert started.status_code == 204
        wait_until(lambda: ledger(folder)[("start", running)] == 1, "the ledger job's start")
        queued = new_id()
        leave_queued(first.url, queued)
        assert httpx.get(f"{first.url}/jobs").status_code == 200  # waits for the writes
        first.kill()
        assert count_stream.ended.wait(30)

    with sqlite3.connect(folder / "jobs.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with ServerProcess(*args, cwd=folder, port=port) as second:
        for ident, name, params, headers, before in finished:
            after = httpx.post(
                f"{second.url}/jobs/{name}",
                json=params,
                headers={"X-Request-Id": ident, **headers},
                timeout=30,
            )
            assert after.status_code == before.status_code, name
            assert after.content == before.content, name
            assert replay_headers(after) == replay_headers(before), name
            output = httpx.get(f"{second.url}/jobs/{ident}/output", headers=headers, timeout=30)
            assert (output.status_code, output.content) == (before.status_code, before.content)
            if headers is SSE:  # resumed after event 5: the rest of the same events
                events = before.content.split(b"\n\n")
                rest = b"\n\n".join(e for e in events if e and int(e.split(b"\n")[0][4:]) > 5)
                resumed = httpx.get(
                    f"{second.url}/jobs/{ident}/output",
                    headers={**SSE, "Last-Event-ID": "5"},
                    timeout=30,
                )
                assert resumed.content == rest + b"\n\n"
        for ident in (counting, running, queued):
            assert record(second.url, ident)["state"] == "lost"
            lost = httpx.get(f"{second.url}/jobs/{ident}/output")
            assert lost.status_code == 503 and lost.json()["code"] == "unavailable"
            assert lost.headers["Retry-After"]

        async def retries() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=second.url, timeout=60) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            "/jobs/ledger",
                            json={"seconds": 0, "lines": 1},
                            headers={"X-Request-Id": queued, **TEXT},
                        )
                        for _ in range(30)
                    )
                )

        # The queued job never started; 30 concurrent retries of it run it once.
        answers = asyncio.run(retries())
        assert {(a.status_code, a.content) for a in answers} == {(202, b"line 1\n")}
        assert {a.headers["X-Ledger-Lines"] for a in answers} == {"1"}
        assert record(second.url, queued)["run"] == 2
        retry = httpx.post(
            f"{second.url}/jobs/ledger",
            json=RUNNING,
            headers={"X-Request-Id": running, **TEXT},
            timeout=30,
        )
        assert retry.status_code == 202
        assert retry.text == "".join(f"line {i}\n" for i in range(1, RUNNING["lines"] + 1))
    marks = ledger(folder)
    assert (marks[("start", running)], marks[("end", running)]) == (2, 1), "once partly, once whole"
    assert (marks[("start", queued)], marks[("end", queued)]) == (1, 1)
    for ident, name, *_ in finished:
        if name in ("mark", "ledger"):
            assert marks[("end", ident)] == 1, "a replayed job did not run again"


# --- SIGTERM with running jobs ------------------------------------------------------------

CLOSE_TIMEOUT = 2.0


@dataclass
class Closing:
    folder: Path
    short: str
    short_stream: StreamResult
    long: str
    long_stream: StreamResult
    detached: str
    queued: str
    refused_after: float
    signalled_at: float
    exit_seconds: float
    exit_code: int
    after: dict[str, dict[str, Any]]
    short_replay: httpx.Response
    lost_outputs: dict[str, httpx.Response]
    retries: list[httpx.Response]
    retry_record: dict[str, Any]


@pytest.fixture(scope="module")
def closing(tmp_path_factory: pytest.TempPathFactory) -> Closing:
    """One SIGTERM of a server on SQLite with jobs finishing, running and queued; what each
    client saw; then a restart on the same file."""
    folder = app_dir(tmp_path_factory.mktemp("closing"))
    args = (
        "--examples", "--app", "audit_jobs:jobs",
        "--store", f"sqlite:///{folder / 'jobs.db'}",
        "--concurrent", "3", "--close-timeout", str(CLOSE_TIMEOUT),
    )  # fmt: skip
    short, long, detached, queued = new_id(), new_id(), new_id(), new_id()
    server = ServerProcess(*args, cwd=folder)
    with server:
        _, short_stream = stream_in_thread(
            "POST",
            f"{server.url}/jobs/ledger",
            json_body={"seconds": 1.2, "lines": 4},
            headers={"X-Request-Id": short, **TEXT},
        )
        _, long_stream = stream_in_thread(
            "POST",
            f"{server.url}/jobs/ledger",
            json_body={"seconds": 60, "lines": 60},
            headers={"X-Request-Id": long, **TEXT},
        )
        assert httpx.post(
            f"{server.url}/jobs/ledger",
            json={"seconds": 60, "lines": 60},
            headers={"X-Request-Id": detached},
        ).status_code == 204  # fmt: skip
        wait_until(
            lambda: all(ledger(folder)[("start", i)] == 1 for i in (short, long, detached)),
            "three slow jobs running",
        )
        leave_queued(server.url, queued)
        assert server.process is not None
        signalled_at = time.time()
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                r = httpx.post(f"{server.url}/jobs/echo", json={}, timeout=2)
            except httpx.TransportError:
                return True
            return r.status_code == 503

        refused_after = wait_until(refused, "intake to stop", timeout=5)
        exit_code = server.process.wait(60)
        exit_seconds = time.monotonic() - start
        assert short_stream.ended.wait(30) and long_stream.ended.wait(30)

    with ServerProcess(*args, cwd=folder, port=server.port) as again:
        after = {i: record(again.url, i) for i in (short, long, detached, queued)}
        short_replay = httpx.post(
            f"{again.url}/jobs/ledger",
            json={"seconds": 1.2, "lines": 4},
            headers={"X-Request-Id": short, **TEXT},
        )
        lost_outputs = {
            i: httpx.get(f"{again.url}/jobs/{i}/output", headers=TEXT)
            for i in (long, detached, queued)
        }

        async def retry() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=again.url, timeout=60) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            "/jobs/ledger",
                            json={"seconds": 60, "lines": 60},
                            headers={"X-Request-Id": detached},
                        )
                        for _ in range(20)
                    )
                )

        retries = asyncio.run(retry())
        retry_record = record(again.url, detached)
    return Closing(
        folder, short, short_stream, long, long_stream, detached, queued, refused_after,
        signalled_at, exit_seconds, exit_code, after, short_replay, lost_outputs, retries,
        retry_record,
    )  # fmt: skip


def test_sigterm_stops_intake_at_once(closing: Closing) -> None:
    assert closing.refused_after < 1.0
    assert closing.exit_code in (0, -signal.SIGTERM)


def test_sigterm_lets_a_job_that_ends_within_the_timeout_finish_and_keeps_its_answer(
    closing: Closing,
) -> None:
    whole = b"line 1\nline 2\nline 3\nline 4\n"
    assert (closing.short_stream.status, closing.short_stream.body) == (202, whole)
    assert closing.short_stream.error is None
    assert closing.after[closing.short]["state"] == "succeeded"
    assert (closing.short_replay.status_code, closing.short_replay.content) == (202, whole)
    assert ledger(closing.folder)[("end", closing.short)] == 1


def test_sigterm_records_running_jobs_lost_and_a_retry_runs_them_once(closing: Closing) -> None:
    for ident in (closing.long, closing.detached):
        assert closing.after[ident]["state"] == "lost"
    assert {r.status_code for r in closing.retries} == {204}
    assert (closing.retry_record["run"], closing.retry_record["state"]) == (2, "running")
    marks = ledger(closing.folder)
    assert marks[("start", closing.detached)] == 2  # the lost run, and the retry's
    assert marks[("end", closing.detached)] == 0


def test_sigterm_records_a_job_still_queued_lost_at_once_without_running_it(
    closing: Closing,
) -> None:
    """README: "On close, jobs still waiting are recorded lost at once; running jobs get
    `--close-timeout` seconds"."""
    marks = ledger(closing.folder)
    state = closing.after[closing.queued]["state"]
    ran = (marks[("start", closing.queued)], marks[("end", closing.queued)])
    assert (state, ran) == ("lost", (0, 0)), (
        f"the job queued at SIGTERM is {state} after the restart and its run was noted "
        f"(starts, ends) = {ran}: a worker freed during the close took it from the queue"
    )
    queued = closing.lost_outputs[closing.queued]
    assert queued.status_code == 503 and queued.json()["code"] == "unavailable"


def test_sigterm_a_stream_lost_at_close_keeps_its_answer_and_its_record_says_so(
    closing: Closing,
) -> None:
    """README: "A job lost at close after it began a stream keeps that stream: its answer is
    202, the stream ending with the error marker ... and `GET /jobs/{id}` shows that status";
    a job that wrote nothing answers 503."""
    for ident in (closing.long, closing.detached):  # both began their streams
        output = closing.lost_outputs[ident]
        assert output.status_code == 202 and output.content.startswith(b"line 1\n")
        assert b"\n$error: unavailable: " in output.content
        assert closing.after[ident]["status"] == 202, closing.after[ident]
    assert closing.after[closing.queued]["status"] == 503


def test_sigterm_gives_running_jobs_close_timeout_seconds_then_exits(closing: Closing) -> None:
    """README: "then gives running jobs and their streams `--close-timeout` seconds"."""
    lost_at = closing.after[closing.detached]["finished_at"]
    job_grace = lost_at - closing.signalled_at
    assert job_grace <= CLOSE_TIMEOUT + 1.0 and closing.exit_seconds <= CLOSE_TIMEOUT + 1.5, (
        f"--close-timeout {CLOSE_TIMEOUT}: the running job was recorded lost {job_grace:.1f} s "
        f"after SIGTERM and the server exited after {closing.exit_seconds:.1f} s"
    )


def test_sigterm_ends_the_stream_of_a_job_lost_at_close_with_the_error_marker(
    closing: Closing,
) -> None:
    """README: "A lost job's answer is 503 `unavailable` (its journal ends with that
    failure), after a crash as after a close that timed out"; a stream that began ends with
    the error marker (`$error: <code>: <message>`)."""
    stream = closing.long_stream
    assert stream.status == 202 and stream.body.startswith(b"line 1\n")
    assert stream.error is None and b"\n$error: unavailable: " in stream.body, (
        f"the client streaming a job lost at close got {stream.body[-80:]!r}, then {stream.error}"
    )


# --- hostile input on a real server -------------------------------------------------------


MALFORMED_FRAMING = [
    b"Content-Length: abc\r\n",
    b"Content-Length: 2\r\nContent-Length: 3\r\n",
    b"X-Request-Id: \x01\x02\r\n",
    b"Bad Header: 1\r\n",
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
]


@pytest.mark.parametrize("stack", ["httptools", "h11"])
def test_malformed_headers_on_the_wire_get_a_json_4xx_naming_the_problem(
    tmp_path: Path, stack: str
) -> None:
    """RELIABILITY.md: "Malformed headers, ids, bodies, paths and query strings get a 4xx with
    a JSON message naming what was wrong"; the issue: "every malformed header ... gets a 4xx
    with a JSON message that says what was wrong"."""
    with ServerProcess(
        "--examples", "--store", "memory://", "--http", stack, cwd=tmp_path
    ) as server:
        plain = []
        for header in MALFORMED_FRAMING:
            request = b"POST /jobs/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            if header.startswith(b"Transfer"):
                request += header
            else:
                request += header + b"\r\n{}"
            status, headers, body = parse_raw(raw_exchange(server.port, request))
            assert 400 <= status < 500
            good = headers.get("content-type", "").startswith("application/json")
            good = good and bool(json.loads(body)["message"])  # the parser's, or the app's
            if not good:
                plain.append((header, status, headers.get("content-type"), body[:60]))
            assert httpx.post(f"{server.url}/jobs/echo", json={}).status_code == 200
    assert not plain, f"{len(plain)} of {len(MALFORMED_FRAMING)} not answered in JSON: {plain}"


def _bad_requests(good_id: str, alice: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx keyword arguments) of requests a server must refuse with a 4xx."""
    deep = b"[" * 50_000 + b"]" * 50_000
    return [
        ("POST", "/jobs/mark", {"headers": {**alice, "X-Request-Id": "xyz"}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "X-Request-Id": "0" * 31}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "X-Request-Id": "g" * 32}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "X-Request-Id": "A" * 23}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "X-Request-Id": good_id[:-1] + "!"}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "X-Request-Id": new_id(),
                                            "Idempotency-Key": "k"}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "Idempotency-Key": "a b"}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "Idempotency-Key": "x" * 256}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "Idempotency-Key": b"\xe9t\xe9"}}),
        ("POST", "/jobs/mark", {"headers": {}}),
        ("POST", "/jobs/mark", {"headers": {"Authorization": "Bearer"}}),
        ("POST", "/jobs/mark", {"headers": {"Authorization": "Basic YWxpY2U6eA=="}}),
        ("POST", "/jobs/mark", {"headers": {"Authorization": "Bearer alice-tokem"}}),
        ("POST", "/jobs/mark", {"headers": {"Authorization": b"Bearer \xe9"}}),
        ("GET", "/jobs", {"headers": {"Authorization": "Bearer nope"}}),
        ("GET", f"/jobs/{good_id}", {"headers": {"Authorization": "bearer"}}),
        ("POST", "/jobs/mark", {"headers": alice, "content": b"[1]"}),
        ("POST", "/jobs/mark", {"headers": alice, "content": b"{"}),
        ("POST", "/jobs/mark", {"headers": alice, "content": b"\xff\xfe\x00"}),
        ("POST", "/jobs/mark", {"headers": alice, "content": b'{"n": 1e999999}'}),
        ("POST", "/jobs/mark", {"headers": alice, "content": b'{"n": NaN}'}),
        ("POST", "/jobs/mark", {"headers": alice, "content": b'{"a": "\\ud800"}'}),
        ("POST", "/jobs/mark", {"headers": alice, "content": deep}),
        ("POST", "/jobs/mark", {"headers": alice, "content": b"{}" + b" " * 200_000}),
        ("POST", "/jobs/mark", {"headers": alice, "json": {"n": "one"}}),
        ("POST", "/jobs/mark", {"headers": alice, "json": {"zz": 1}}),
        ("POST", "/jobs/count", {"headers": alice, "json": {"to": 0}}),
        ("POST", "/jobs/count", {"headers": alice, "json": {"delay": -1}}),
        ("POST", "/jobs/sleep", {"headers": alice, "json": {"seconds": "x"}}),
        ("POST", "/jobs/tally", {"headers": alice, "json": {"key": ["k"]}}),
        ("POST", "/jobs/fail", {"headers": alice, "json": {"code": "nope"}}),
        ("POST", "/jobs/nope", {"headers": alice, "json": {}}),
        ("POST", "/jobs/mark", {"headers": {**alice, "Accept": "image/png"}}),
        ("POST", "/jobs/mark", {"headers": {**alice, **SSE, "Last-Event-ID": "x"}}),
        ("POST", "/jobs/mark", {"headers": {**alice, **SSE, "Last-Event-ID": "9" * 40}}),
        ("GET", "/jobs", {"headers": alice, "params": {"limit": "0"}}),
        ("GET", "/jobs", {"headers": alice, "params": {"limit": "²"}}),
        ("GET", "/jobs", {"headers": alice, "params": {"state": "done"}}),
        ("GET", "/jobs", {"headers": alice, "params": {"cursor": "!!"}}),
        ("GET", "/jobs/xyz", {"headers": alice}),
        ("GET", "/jobs/xyz/output", {"headers": alice}),
        ("GET", f"/jobs/{good_id}/output", {"headers": {**alice, "Accept": "image/png"}}),
        ("GET", f"/jobs/{good_id}", {"headers": {"Authorization": "Bearer bob-token"}}),
        ("PUT", f"/jobs/{good_id}", {"headers": alice}),
    ]  # fmt: skip


def test_a_flood_of_malformed_requests_among_good_ones_loses_no_accepted_job(
    tmp_path: Path,
) -> None:
    folder = app_dir(tmp_path)
    (folder / "tokens").write_text("alice-token alice\nbob-token bob\n")
    args = (
        "--examples", "--app", "audit_jobs:jobs", "--tokens", str(folder / "tokens"),
        "--store", f"sqlite:///{folder / 'jobs.db'}",
    )  # fmt: skip
    alice = {"Authorization": "Bearer alice-token"}
    rng = random.Random(20261127)
    with ServerProcess(*args, cwd=folder) as first:
        port = first.port
        earlier = new_id()
        base = httpx.post(
            f"{first.url}/jobs/mark", json={"n": -1}, headers={**alice, "X-Request-Id": earlier}
        )
        assert base.status_code == 200
        goods = [(new_id(), n) for n in range(400)]
        bads = _bad_requests(earlier, alice) * 6
        # The same id as an earlier job, with another request: 422, the earlier one stays.
        bads += [("POST", "/jobs/mark", {"headers": {**alice, "X-Request-Id": earlier},
                                         "json": {"n": 5}})] * 20  # fmt: skip
        work: list[tuple[str, Any]] = [("good", g) for g in goods] + [("bad", b) for b in bads]
        rng.shuffle(work)
        good_answers: dict[str, httpx.Response] = {}
        bad_answers: list[tuple[tuple[str, str, dict[str, Any]], httpx.Response]] = []
        framing_answers: list[bytes] = []

        async def send_all() -> None:
            limits = httpx.Limits(max_connections=30)
            async with httpx.AsyncClient(base_url=first.url, limits=limits, timeout=60) as c:
                gate = asyncio.Semaphore(30)

                async def one(kind: str, item: Any, index: int) -> None:
                    async with gate:
                        if kind == "good":
                            ident, n = item
                            good_answers[ident] = await c.post(
                                "/jobs/mark",
                                json={"n": n},
                                headers={**alice, "X-Request-Id": ident},
                            )
                            return
                        method, path, kw = item
                        bad_answers.append((item, await c.request(method, path, **kw)))
                        if index % 10 == 0:  # and some garbage below HTTP, now and then
                            garbage = rng.choice([*MALFORMED_FRAMING, b"\x00\xff\r\n"])
                            request = b"POST /jobs/mark HTTP/1.1\r\nHost: x\r\n" + garbage + b"\r\n"
                            framing_answers.append(
                                await asyncio.to_thread(raw_exchange, port, request, 2.0)
                            )

                await asyncio.gather(*(one(k, item, i) for i, (k, item) in enumerate(work)))

        asyncio.run(send_all())
        for (method, path, kw), r in bad_answers:
            assert 400 <= r.status_code < 500, (method, path, kw, r.status_code, r.text[:200])
            assert is_json_error(r), (method, path, r.status_code, r.text[:200])
        assert {r.status_code for (_, _, kw), r in bad_answers if kw.get("json") == {"n": 5}} == {
            422
        }
        assert all(a.startswith(b"HTTP/1.1 4") for a in framing_answers), framing_answers[:3]
        assert {r.status_code for r in good_answers.values()} == {200}
        assert len(good_answers) == len(goods)
        alone = httpx.get(f"{first.url}/jobs", headers=alice, params={"limit": "500"})
        assert alone.status_code == 200  # and the listing waits for the answers' writes
        first.kill()

    with ServerProcess(*args, cwd=folder, port=port) as second:
        for ident, n in goods:
            again = httpx.post(
                f"{second.url}/jobs/mark", json={"n": n}, headers={**alice, "X-Request-Id": ident}
            )
            assert (again.status_code, again.content) == (200, good_answers[ident].content)
        again = httpx.post(
            f"{second.url}/jobs/mark", json={"n": -1}, headers={**alice, "X-Request-Id": earlier}
        )
        assert (again.status_code, again.content) == (200, base.content)
    marks = ledger(folder)
    assert all(marks[("end", ident)] == 1 for ident, _ in goods)
    assert marks[("end", earlier)] == 1


# --- retention ----------------------------------------------------------------------------


def test_sqlite_prunes_a_backlog_past_retention_without_blocking_requests(tmp_path: Path) -> None:
    """A restart on a file whose 8,000 answers are all past retention: pruning runs while
    requests are served; the newest --track-duplicate-ids ids answer ran-to-completion."""
    db = tmp_path / "jobs.db"
    remember = 1000
    ids = [new_id() for _ in range(8000)]

    def params(i: int) -> tuple[str, dict[str, Any]]:
        return ("tally", {"key": "old"}) if i % 2 else ("count", {"to": 5, "delay": 0})

    with ServerProcess("--examples", "--store", f"sqlite:///{db}", cwd=tmp_path) as first:
        port = first.port
        requests = [
            (f"/jobs/{params(i)[0]}", params(i)[1], {"X-Request-Id": ident, **NDJSON})
            for i, ident in enumerate(ids)
        ]
        answers = asyncio.run(post_many(port, requests, 40))
        assert {a.status for a in answers} == {200, 202}
        assert first.stop() in (0, -signal.SIGTERM)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE jobs SET created_at = created_at - 1e6, finished_at = finished_at - 1e6"
        )
        newest = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM jobs ORDER BY finished_at DESC LIMIT ?", (remember,)
            )
        }
        assert conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] > 0

    # The node prunes once at start, so a retention far longer than the test keeps the fresh
    # answers below from passing it and pushing the old ids out of the newest `remember`.
    args = ("--examples", "--store", f"sqlite:///{db}", "--retention", "600",
            "--track-duplicate-ids", str(remember))  # fmt: skip
    with ServerProcess(*args, cwd=tmp_path, port=port) as second:
        reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)

        def pruned() -> bool:
            (unkept,) = reader.execute("SELECT COUNT(*) FROM jobs WHERE kept = 0").fetchone()
            (old,) = reader.execute(
                "SELECT COUNT(*) FROM jobs WHERE kept = 1 AND finished_at < ?",
                (time.time() - 1000,),
            ).fetchone()
            return bool(unkept == remember and old == 0)

        slowest = 0.0
        fresh: dict[str, bytes] = {}

        async def serve_while_pruning() -> None:
            nonlocal slowest
            async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
                deadline = time.monotonic() + 30
                assert not await asyncio.to_thread(pruned), "pruned before serving: no overlap"
                while time.monotonic() < deadline:
                    ident = new_id()
                    start = time.monotonic()
                    r = await client.post(
                        "/jobs/echo", json={"i": len(fresh)}, headers={"X-Request-Id": ident}
                    )
                    await client.get("/healthz")
                    slowest = max(slowest, time.monotonic() - start)
                    assert r.status_code == 200
                    fresh[ident] = r.content
                    again = await client.post(
                        "/jobs/echo", json={"i": len(fresh) - 1}, headers={"X-Request-Id": ident}
                    )
                    assert again.content == r.content
                    if len(fresh) % 50 == 0 and await asyncio.to_thread(pruned):
                        return
                raise AssertionError("the backlog was not pruned within 30 s")

        asyncio.run(serve_while_pruning())
        assert slowest < 0.5, f"a request took {slowest:.3f} s while the store pruned"
        (journal_rows,) = reader.execute("SELECT COUNT(*) FROM journal").fetchone()
        remembered = {r[0] for r in reader.execute("SELECT id FROM jobs WHERE kept = 0")}
        reader.close()
        assert journal_rows == 0
        assert remembered == newest
        for ident in list(newest)[:100]:
            i = ids.index(ident)
            name, body = params(i)
            r = httpx.post(f"{second.url}/jobs/{name}", json=body, headers={"X-Request-Id": ident})
            assert r.status_code == 204 and r.headers["X-Job-State"] == "ran-to-completion"
            assert record(second.url, ident)["kept"] is False
        peek = httpx.post(f"{second.url}/jobs/tally", json={"key": "old", "peek": True})
        assert peek.json()["value"] == 0, "a remembered id ran again"


def test_redis_prunes_answers_past_retention_and_remembers_their_ids(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = f"audit{uuid.uuid4().hex[:8]}"
    store = f"{redis_server.url}?lease=1&prefix={prefix}"
    args = ("--examples", "--store", store, "--retention", "2")
    a = ServerProcess(*args, cwd=tmp_path)
    b = ServerProcess(*args, cwd=tmp_path)
    try:
        a.start()
        b.start()
        done = []
        for i in range(20):
            ident = new_id()
            name, body = ("tally", {"key": "r"}) if i % 2 else ("count", {"to": 3, "delay": 0})
            r = httpx.post(
                f"{a.url}/jobs/{name}", json=body, headers={"X-Request-Id": ident, **NDJSON}
            )
            assert r.status_code in (200, 202)
            again = httpx.post(
                f"{b.url}/jobs/{name}", json=body, headers={"X-Request-Id": ident, **NDJSON}
            )
            assert (again.status_code, again.content) == (r.status_code, r.content)
            done.append((ident, name, body))
        wait_until(
            lambda: all(record(b.url, i)["kept"] is False for i, _, _ in done),
            "the answers past retention to be pruned",
            timeout=20,
        )
        client = redis_client.Redis.from_url(redis_server.url)
        try:
            left = [i for i, _, _ in done if client.exists(f"{prefix}:jnl:{i}:anonymous")]
        finally:
            client.close()
        assert not left, "journals past retention are still in Redis"
        for ident, name, body in done:
            r = httpx.post(f"{b.url}/jobs/{name}", json=body, headers={"X-Request-Id": ident})
            assert r.status_code == 204 and r.headers["X-Job-State"] == "ran-to-completion"
        peeks = [
            httpx.post(f"{n.url}/jobs/tally", json={"key": "r", "peek": True}).json()["value"]
            for n in (a, b)
        ]
        assert peeks == [10, 0]
    finally:
        a.kill()
        b.kill()


# --- several nodes on one Redis -----------------------------------------------------------


@pytest.fixture
def cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    folder = app_dir(tmp_path)
    store = f"{redis_server.url}?lease=1&prefix=audit{uuid.uuid4().hex[:8]}"
    nodes = [
        ServerProcess("--examples", "--app", "audit_jobs:jobs", "--store", store, cwd=folder)
        for _ in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
            node.kill()


def test_kill_9_of_a_node_loses_its_jobs_within_a_lease_and_retries_run_once_elsewhere(
    cluster: list[ServerProcess],
) -> None:
    victim, other, third = cluster
    folder = victim.cwd
    assert folder is not None
    body = {"seconds": 60, "lines": 120}
    running = [new_id() for _ in range(3)]
    for ident in running:
        r = httpx.post(f"{victim.url}/jobs/ledger", json=body, headers={"X-Request-Id": ident})
        assert r.status_code == 204
    wait_until(lambda: all(ledger(folder)[("start", i)] == 1 for i in running), "3 jobs running")
    _, joined = stream_in_thread("GET", f"{other.url}/jobs/{running[0]}/output", headers=TEXT)
    assert joined.started.wait(30)
    victim.kill()
    took = wait_until(
        lambda: all(record(third.url, i)["state"] == "lost" for i in running),
        "the dead node's jobs to be lost",
    )
    assert took < 3.0, f"lost {took:.1f} s after the kill, with a 1 s lease"
    assert joined.ended.wait(10)
    assert joined.body.startswith(b"line 1\n") and b"\n$error: unavailable: " in joined.body

    short = {"seconds": 0.3, "lines": 3}

    async def retries() -> list[httpx.Response]:
        clients = [httpx.AsyncClient(base_url=n.url, timeout=60) for n in (other, third)]
        try:
            return await asyncio.gather(
                *(
                    clients[k % 2].post(
                        "/jobs/ledger",
                        json=body if k < 60 else short,
                        headers={"X-Request-Id": running[k % 3]},
                    )
                    for k in range(66)
                )
            )
        finally:
            for c in clients:
                await c.aclose()

    answers = asyncio.run(retries())
    mismatched = [a for k, a in enumerate(answers) if k >= 60]
    assert {a.status_code for a in mismatched} == {422}
    assert {a.status_code for k, a in enumerate(answers) if k < 60} == {204}
    alive = {httpx.get(f"{n.url}/healthz").json()["node"] for n in (other, third)}
    for ident in running:
        rec = record(other.url, ident)
        assert rec["run"] == 2 and rec["node"] in alive
    marks = ledger(folder)
    assert all(marks[("start", i)] == 2 for i in running), marks


def test_a_node_restarted_under_its_name_marks_its_leftovers_lost_at_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """README: "A node that restarts under the same name ... marks its own leftovers lost at
    once" (here the lease is 30 s: "at once" is well before it runs out)."""
    folder = app_dir(tmp_path)
    store = f"{redis_server.url}?lease=30&prefix=audit{uuid.uuid4().hex[:8]}"
    args = ("--examples", "--app", "audit_jobs:jobs", "--store", store)
    node = ServerProcess(*args, cwd=folder)
    witness = ServerProcess(*args, cwd=folder)
    try:
        node.start()
        witness.start()
        ident = new_id()
        body = {"seconds": 60, "lines": 60}
        r = httpx.post(f"{node.url}/jobs/ledger", json=body, headers={"X-Request-Id": ident})
        assert r.status_code == 204
        wait_until(lambda: ledger(folder)[("start", ident)] == 1, "the job's start")
        killed = time.monotonic()
        node.kill()
        assert record(witness.url, ident)["state"] == "running"
        node.start()
        took = wait_until(lambda: record(witness.url, ident)["state"] == "lost", "lost")
        assert time.monotonic() - killed < 10, f"lost {took:.1f} s after the restart"
        retry = httpx.post(
            f"{witness.url}/jobs/ledger",
            json={"seconds": 0.2, "lines": 2},
            headers={"X-Request-Id": ident, **TEXT},
        )
        assert retry.status_code == 422  # not the same request
        retry = httpx.post(f"{witness.url}/jobs/ledger", json=body, headers={"X-Request-Id": ident})
        assert retry.status_code == 204
        assert record(node.url, ident)["run"] == 2
    finally:
        node.kill()
        witness.kill()


def test_a_paused_node_cannot_write_over_the_run_that_replaced_it(
    cluster: list[ServerProcess],
) -> None:
    """README: "A node whose lease ran out cannot write over the new run: every write checks
    the run number"."""
    paused, other, _ = cluster
    assert paused.process is not None
    ident = new_id()
    body = {"seconds": 2, "lines": 4}
    r = httpx.post(f"{paused.url}/jobs/ledger", json=body, headers={"X-Request-Id": ident})
    assert r.status_code == 204
    wait_until(lambda: record(other.url, ident)["state"] == "running", "the job running")
    paused.process.send_signal(signal.SIGSTOP)
    wait_until(lambda: record(other.url, ident)["state"] == "lost", "the paused node's job lost")
    retry = httpx.post(
        f"{other.url}/jobs/ledger", json=body, headers={"X-Request-Id": ident, **TEXT}, timeout=30
    )
    whole = b"line 1\nline 2\nline 3\nline 4\n"
    assert (retry.status_code, retry.content) == (202, whole)
    paused.process.send_signal(signal.SIGCONT)
    assert paused.cwd is not None
    assert paused.cwd is not None
    folder = paused.cwd
    wait_until(lambda: ledger(folder)[("end", ident)] == 2, "the paused run to end too")
    # A listing waits for the answers this node is writing: its final write went out.
    assert httpx.get(f"{paused.url}/jobs").status_code == 200
    rec = record(other.url, ident)
    assert (rec["run"], rec["state"]) == (2, "succeeded")
    output = httpx.get(f"{other.url}/jobs/{ident}/output", headers=TEXT)
    assert (output.status_code, output.content) == (202, whole)


def test_a_paused_node_that_resumes_after_its_job_was_marked_lost_leaves_the_id_retryable(
    cluster: list[ServerProcess],
) -> None:
    """RELIABILITY.md: a job whose server stopped "is recorded `lost`; a retry of its id with
    the same request runs it again"; API.md: a repeat gets "the same status ... and the same
    body bytes (or the same stream, from its start)" as the first one. Here the node only
    stopped for a while (SIGSTOP: a long GC pause, a frozen VM) and comes back before any
    retry."""
    paused, other, _ = cluster
    assert paused.process is not None and paused.cwd is not None
    folder = paused.cwd
    ident = new_id()
    body = {"seconds": 1.5, "lines": 3}
    r = httpx.post(f"{paused.url}/jobs/ledger", json=body, headers={"X-Request-Id": ident})
    assert r.status_code == 204
    wait_until(lambda: ledger(folder)[("start", ident)] == 1, "the job's start")
    paused.process.send_signal(signal.SIGSTOP)
    wait_until(lambda: record(other.url, ident)["state"] == "lost", "the paused node's job lost")
    lost = httpx.get(f"{other.url}/jobs/{ident}/output", headers=TEXT)
    # Its stream ends with the lost marker; or, when the pause came before its first line
    # reached Redis, the lost answer is all there is (503).
    assert b"$error: unavailable" in lost.content or (
        lost.status_code == 503 and lost.json()["code"] == "unavailable"
    ), lost.content
    paused.process.send_signal(signal.SIGCONT)
    wait_until(lambda: ledger(folder)[("end", ident)] == 1, "the resumed run to end")
    # A listing waits for the answers this node is writing: its final write went out.
    assert httpx.get(f"{paused.url}/jobs").status_code == 200
    rec = record(other.url, ident)
    retry = httpx.post(
        f"{other.url}/jobs/ledger", json=body, headers={"X-Request-Id": ident, **TEXT}, timeout=30
    )
    whole = b"line 1\nline 2\nline 3\n"
    # Either the resumed run's answer stands (whole, consistent with its record), or the id
    # stays lost and the retry runs it again: never a record that says succeeded over an
    # answer that says the job was lost.
    consistent = (rec["state"], retry.status_code, retry.content) in {
        ("succeeded", 202, whole),
        ("lost", 202, whole),
    }
    assert consistent, (
        f"after the paused node resumed, the record says {rec['state']} (run {rec['run']}, "
        f"status {rec['status']}) and a retry answers {retry.status_code} {retry.content!r}"
    )


def test_a_redis_that_hangs_for_a_moment_leaves_every_answer_as_it_was(tmp_path: Path) -> None:
    """README: a Redis that sends nothing for `reply_timeout` seconds fails the calls in flight
    ("not sent again, since a script may have run"); RELIABILITY.md: a final write the store
    refuses "is tried again ... the job stays live meanwhile, so repeats get its answer", and
    "Every repeat gets the same status, the same pending headers and the same body bytes, or
    the same stream from its start"."""
    folder = app_dir(tmp_path)
    with RedisServer(tmp_path) as redis:
        assert redis.process is not None
        store = f"{redis.url}?lease=10&reply_timeout=0.5"
        args = ("--app", "audit_jobs:jobs", "--store", store)
        runner = ServerProcess(*args, cwd=folder)
        other = ServerProcess(*args, cwd=folder)
        try:
            runner.start()
            other.start()
            ident = new_id()
            body = {"seconds": 1.5, "lines": 6}
            whole = b"".join(b"line %d\n" % i for i in range(1, 7))
            r = httpx.post(f"{runner.url}/jobs/ledger", json=body, headers={"X-Request-Id": ident})
            assert r.status_code == 204
            wait_until(lambda: ledger(folder)[("start", ident)] == 1, "the job's start")
            redis.process.send_signal(signal.SIGSTOP)  # hung: connections open, no replies
            _, during = stream_in_thread(
                "POST",
                f"{runner.url}/jobs/ledger",
                json_body=body,
                headers={"X-Request-Id": ident, **TEXT},
            )
            wait_until(
                lambda: "could not record the answer of job" in runner.output(),
                "a final write that Redis did not answer",
            )
            # The stream's end is held until it is written (the default): not before Redis
            # answers again.
            assert not during.ended.is_set()
            redis.process.send_signal(signal.SIGCONT)
            assert during.ended.wait(30)
            assert (during.status, b"".join(during.chunks)) == (202, whole)
            wait_until(
                lambda: record(other.url, ident)["state"] == "succeeded", "the answer recorded"
            )
            repeat = httpx.post(
                f"{other.url}/jobs/ledger",
                json=body,
                headers={"X-Request-Id": ident, **TEXT},
                timeout=30,
            )
            output = httpx.get(f"{runner.url}/jobs/{ident}/output", headers=TEXT, timeout=30)
        finally:
            redis.process.send_signal(signal.SIGCONT)
            runner.kill()
            other.kill()
    assert ledger(folder)[("end", ident)] == 1
    assert (repeat.status_code, repeat.content) == (202, whole), (
        f"the first client got {whole!r}; once Redis answered again, a repeat got "
        f"{repeat.content!r}"
    )
    assert (output.status_code, output.content) == (202, whole)


async def _flood_until(
    port: int, answered: dict[str, tuple[int, bytes]], enough: asyncio.Event, connection: int
) -> None:
    """POST /jobs/mark with a new id each time, on one keep-alive connection, until the
    server dies under it; every answer read in full is kept in `answered`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while True:
            ident = new_id()
            body = json.dumps({"n": connection * 100_000 + n}).encode()
            n += 1
            writer.write(
                b"POST /jobs/mark HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                + f"X-Request-Id: {ident}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers, _ = parse_raw(head)
            data = await reader.readexactly(int(headers["content-length"]))
            answered[ident] = (status, data)
            if len(answered) >= FLOOD:
                enough.set()
    except (OSError, asyncio.IncompleteReadError):
        pass  # the server was killed under this connection
    finally:
        writer.close()


def test_kill_9_during_a_flood_of_fast_jobs_keeps_every_answer_given(tmp_path: Path) -> None:
    """The issue: "finished jobs are replayed ... after kill -9". By default (--hold-answers)
    no answer goes out before its write: every id answered before the kill repeats its
    answer after the restart, and none of them runs again. The server runs with its
    defaults, so a default that let answers out first fails here."""
    kill_9_during_a_flood(tmp_path)


def kill_9_during_a_flood(tmp_path: Path, *options: str) -> None:
    """Flood a server (20 connections, a new id a request) with fast jobs, `kill -9` it, and
    check that every id answered before the kill repeats its answer after a restart and that
    none of them ran to completion twice."""
    folder = app_dir(tmp_path)
    store = f"sqlite:///{folder / 'jobs.db'}"
    args = ("--app", "audit_jobs:jobs", "--store", store, *options)
    answered: dict[str, tuple[int, bytes]] = {}
    with ServerProcess(*args, cwd=folder) as first:
        port = first.port

        async def flood() -> None:
            enough = asyncio.Event()
            tasks = [
                asyncio.create_task(_flood_until(port, answered, enough, c)) for c in range(20)
            ]
            await asyncio.wait_for(enough.wait(), 60)
            first.kill()  # kill -9 in the middle of the flood
            await asyncio.gather(*tasks)

        asyncio.run(flood())
    assert all(status == 200 for status, _ in answered.values())

    with ServerProcess(*args, cwd=folder, port=port) as second, httpx.Client() as client:
        states: Counter[str] = Counter()
        for ident in answered:
            found = client.get(f"{second.url}/jobs/{ident}")
            states["unknown" if found.status_code == 404 else found.json()["state"]] += 1
        differ = []
        for ident, (status, body) in answered.items():
            again = client.post(
                f"{second.url}/jobs/mark",
                json={"n": json.loads(body)["n"]},
                headers={"X-Request-Id": ident},
            )
            if (again.status_code, again.content) != (status, body):
                differ.append((ident, status, body, again.status_code, again.content))
    ends = ledger(folder)
    twice = [i for i in answered if ends[("end", i)] > 1]
    assert set(states) == {"succeeded"} and not differ and not twice, (
        f"{len(answered)} ids answered 200 before the kill; after the restart their records "
        f"were {dict(states)}, {len(differ)} answered differently on a repeat and "
        f"{len(twice)} ran to completion twice; e.g. {differ[:2]}"
    )
