"""A second opinion on the HTTP client and the CLI, written from the contract alone.

The contract: ../shared/API.md, ../shared/DESIGN.md, README.md and the issue (the client retries
a dropped connection, a 429 or a 503 with the same id, honouring Retry-After, a bounded number
of times; `gearjobs run/attach/status/ls` print answers, stream live, and exit 0, 1, 2 or 3).
Everything runs against real servers and real HTTP on 127.0.0.1: `gearjobs serve` processes,
the dropping proxy, and (for answers no gearjobs server gives on demand: Retry-After values,
connections closed before an answer) a small scripted HTTP server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import io
import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from gearjobs.cli import main
from gearjobs.dispatcher import Dispatcher
from gearjobs.http import AsyncClient, Client, ServerUnreachable
from gearjobs.jobs import (
    ClientResponse,
    JobRequest,
    RequestIdentifier,
    Response,
    ResponseFailure,
)

from ..http.conftest import test_jobs as extra_jobs
from ..proxy import DroppingProxy
from ..servers import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "gearjobs.cli"]
TEST_JOBS_APP = "tests.http.conftest:test_jobs"  # stream-then-fail, rows, ... next to the examples


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The example jobs and the HTTP tests' extra jobs, on SQLite, for the whole module."""
    tmp = tmp_path_factory.mktemp("audit")
    with ServerProcess(
        "--examples",
        "--app",
        TEST_JOBS_APP,
        "--store",
        f"sqlite:///{tmp}/jobs.db",
        cwd=REPO,
        log_dir=tmp,
    ) as s:
        yield s


def gearjobs(url: str, *args: str) -> tuple[int, str, str]:
    """`gearjobs ARGS --server URL` in process; exit code, stdout, stderr."""
    result = CliRunner().invoke(main, [*args, "--server", url], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def new_id() -> str:
    return str(RequestIdentifier.new())


def ticks(n: int) -> str:
    return "".join(f"tick {i}\n" for i in range(1, n + 1))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `condition` until it holds (the servers give no other signal)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def record(url: str, ident: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/jobs/{ident}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def state_is(url: str, ident: str, state: str) -> Callable[[], bool]:
    def check() -> bool:
        answer = httpx.get(f"{url}/jobs/{ident}")
        return answer.status_code == 200 and answer.json()["state"] == state

    return check


def start_in_background(url: str, name: str, params: dict[str, Any], ident: str) -> None:
    """Start a streaming job without following it: 204 at once, the job runs on (API.md)."""
    answer = httpx.post(f"{url}/jobs/{name}", json=params, headers={"X-Request-Id": ident})
    assert answer.status_code == 204, answer.text


def tally_peek(url: str, key: str) -> int:
    answer = httpx.post(f"{url}/jobs/tally", json={"key": key, "peek": True})
    value: int = answer.json()["value"]
    return value


class CliProcess:
    """`python -m gearjobs.cli ARGS` as a real process whose stdout is read as it comes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out = b""

    def wait_for(self, text: bytes, timeout: float = 30.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while text not in self.out:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, remaining))
            if not ready:
                raise AssertionError(f"no {text!r} in time; got {self.out!r}")
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise AssertionError(f"exited before {text!r}; got {self.out!r}")
            self.out += data

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        rest, err = self.proc.communicate(timeout=timeout)
        self.out += rest
        return self.proc.returncode, self.out.decode(), err.decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    started: list[CliProcess] = []
    yield started
    for process in started:
        process.stop()


@dataclass
class Seen:
    at: float
    path: str
    headers: dict[str, str]


Step = tuple[int, dict[str, str], bytes] | str  # an answer, "drop" or "tick-then-drop"
OK_ANSWER: tuple[int, dict[str, str], bytes] = (
    200,
    {"Content-Type": "application/json"},
    b'{"ok": true}',
)
BUSY_BODY = b'{"message": "busy", "code": "rate-limit"}'


def busy(status: int = 429, retry_after: str | None = "0") -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return status, headers, BUSY_BODY


class ScriptedServer:
    """A real HTTP/1.1 server on loopback: answers each request with the next step of its
    script, then 200 {"ok": true}. "drop" closes the connection without an answer;
    "tick-then-drop" begins a text stream (202, chunked), sends "tick 1\n" and closes."""

    def __init__(self, *script: Step) -> None:
        self.script = list(script)
        self.seen: list[Seen] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    outer.seen.append(
                        Seen(
                            time.monotonic(),
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                        )
                    )
                    step = outer.script.pop(0) if outer.script else OK_ANSWER
                if step == "tick-then-drop":
                    self.send_response(202)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"7\r\ntick 1\n\r\n")  # and no last chunk
                    self.wfile.flush()
                if isinstance(step, str):
                    self.close_connection = True
                    return
                status, headers, body = step
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def gaps(self) -> list[float]:
        return [b.at - a.at for a, b in zip(self.seen, self.seen[1:], strict=False)]


async def run_with(
    flavour: str, url: str, name: str, params: dict[str, Any], response: Response, **kw: Any
) -> str | None:
    """Run a job with the sync client (in a thread) or the async one."""
    tries = kw.pop("tries", 5)
    if flavour == "sync":

        def run() -> str | None:
            with Client(url, tries=tries) as client:
                return client.run(name, params, response, **kw)

        return await asyncio.to_thread(run)
    async with AsyncClient(url, tries=tries) as client:
        return await client.run(name, params, response, **kw)


FLAVOURS = ["sync", "async"]


class Printed(ClientResponse):
    """A ClientResponse that prints the stream (events as JSON lines) to a StringIO."""

    def __init__(self) -> None:
        self.printed = io.StringIO()
        super().__init__(output=self.printed, gather=False)

    def events(self) -> list[Any]:
        return [json.loads(line) for line in self.printed.getvalue().splitlines()]


# --- the client: retries, Retry-After, bounded tries (scripted server) --------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_waits_retry_after_seconds_between_busy_tries(flavour: str) -> None:
    with ScriptedServer(busy(429, "1"), busy(503, "1")) as stub:
        response = ClientResponse()
        await run_with(flavour, stub.url, "echo", {}, response)
    assert response.error is None
    assert response.data == {"ok": True}
    assert len(stub.seen) == 3
    assert all(gap >= 0.95 for gap in stub.gaps()), stub.gaps()
    ids = {s.headers.get("x-request-id") for s in stub.seen}
    assert len(ids) == 1 and None not in ids, "every try carries the first try's id"


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_makes_exactly_its_tries_then_the_busy_answer_is_the_answer(
    flavour: str,
) -> None:
    with ScriptedServer(*[busy(429, "0")] * 10) as stub:
        response = ClientResponse()
        await run_with(flavour, stub.url, "echo", {}, response, tries=3)
    assert len(stub.seen) == 3
    assert response.error is not None
    assert response.error.response_failure() is ResponseFailure.RATE_LIMIT


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_retries_connections_closed_before_an_answer_with_the_same_id(
    flavour: str,
) -> None:
    with ScriptedServer("drop", "drop") as stub:
        response = ClientResponse()
        await run_with(flavour, stub.url, "echo", {}, response)
    assert response.data == {"ok": True}
    assert len(stub.seen) == 3
    assert len({s.headers["x-request-id"] for s in stub.seen}) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_gives_up_after_its_tries_when_every_connection_drops(flavour: str) -> None:
    with (
        ScriptedServer(*["drop"] * 10) as stub,
        pytest.raises(ServerUnreachable, match="after 3 tries"),
    ):
        await run_with(flavour, stub.url, "echo", {}, ClientResponse(), tries=3)
    assert len(stub.seen) == 3


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_sends_the_same_idempotency_key_and_no_request_id_on_every_try(
    flavour: str,
) -> None:
    with ScriptedServer(busy(429, "0"), "drop") as stub:
        response = ClientResponse()
        await run_with(flavour, stub.url, "echo", {}, response, idempotency_key="order-77")
    assert response.data == {"ok": True}
    assert [s.headers.get("idempotency-key") for s in stub.seen] == ["order-77"] * 3
    assert all("x-request-id" not in s.headers for s in stub.seen)


def test_client_honours_a_retry_after_given_as_an_http_date() -> None:
    # RFC 9110 10.2.3: Retry-After is an HTTP-date or a number of seconds.
    when = email.utils.formatdate(time.time() + 3, usegmt=True)  # 2 to 3 s from now
    with ScriptedServer(busy(429, when)) as stub:
        response = ClientResponse()
        with Client(stub.url) as client:
            client.run("echo", {}, response)
    assert response.data == {"ok": True}
    assert stub.gaps()[0] >= 1.5, f"waited {stub.gaps()[0]:.2f} s, not until {when}"


def test_client_survives_a_negative_retry_after() -> None:
    with ScriptedServer(busy(429, "-1")) as stub:
        response = ClientResponse()
        with Client(stub.url) as client:
            client.run("echo", {}, response)  # an invalid header: ignored, a backoff instead
    assert response.data == {"ok": True}
    assert len(stub.seen) == 2


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_reports_a_failure_answered_to_the_retry_of_a_dropped_stream(
    flavour: str,
) -> None:
    unavailable = (
        503,
        {"Content-Type": "application/json", "Retry-After": "0"},
        b'{"message": "the job was lost", "code": "unavailable"}',
    )
    with ScriptedServer("tick-then-drop", *[unavailable] * 5) as stub:
        response = ClientResponse()
        await run_with(flavour, stub.url, "sleep", {}, response, tries=3)
    assert len(stub.seen) == 3
    assert response.data.getvalue() == b"tick 1\n", "the failure's body became stream text"
    assert response.error is not None
    assert response.error.response_failure() is ResponseFailure.UNAVAILABLE


def test_cli_sends_an_explicit_id_in_its_canonical_form_on_every_try() -> None:
    hex_id = "0123456789abcdef0123456789abcdef"
    with ScriptedServer(busy(503, "0"), "drop") as stub:
        code, out, _ = gearjobs(stub.url, "run", "echo", "{}", "--id", hex_id)
    assert (code, json.loads(out)) == (0, {"ok": True})
    canonical = str(RequestIdentifier.parse(hex_id))
    assert [s.headers["x-request-id"] for s in stub.seen] == [canonical] * 3


# --- the client against a real server ------------------------------------------------------


async def in_process(name: str, params: dict[str, Any], response: Response) -> None:
    """The same job through the dispatcher, in process: what a Response should be given."""
    job = extra_jobs().job_for(JobRequest(name, params))
    async with Dispatcher() as dispatcher:
        await (await dispatcher.dispatch(RequestIdentifier.new(), job, response))


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_reports_a_text_stream_that_fails_midway_as_the_dispatcher_does(
    server: ServerProcess, flavour: str
) -> None:
    local = ClientResponse()
    await in_process("stream-then-fail", {"events": False}, local)
    remote = ClientResponse()
    await run_with(flavour, server.url, "stream-then-fail", {"events": False}, remote)
    assert local.error is not None
    assert (local.error.response_failure(), local.error.message) == (
        ResponseFailure.NOT_FOUND,
        "the source went away",
    )
    assert remote.error is not None, (
        f"the Response got no failure; its text was {remote.data.getvalue()!r}"
    )
    assert remote.error.response_failure() is local.error.response_failure()
    assert remote.error.message == local.error.message
    assert remote.data.getvalue() == local.data.getvalue() == b"one\n"


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_reports_an_event_stream_that_fails_midway_as_the_dispatcher_does(
    server: ServerProcess, flavour: str
) -> None:
    local = Printed()
    await in_process("stream-then-fail", {"events": True}, local)
    remote = Printed()
    await run_with(flavour, server.url, "stream-then-fail", {"events": True}, remote)
    assert local.error is not None and remote.error is not None
    assert remote.error.response_failure() is local.error.response_failure()
    assert remote.error.message == local.error.message
    assert remote.events() == local.events() == [{"n": 1}]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("kind", ["text", "events"])
async def test_a_stream_dropped_midway_is_joined_and_every_part_arrives_once(
    server: ServerProcess, flavour: str, kind: str
) -> None:
    ident = RequestIdentifier.new()
    response = Printed()
    with DroppingProxy(server.port, cut=700) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        if kind == "text":
            await run_with(
                flavour, url, "sleep", {"seconds": 0.5, "lines": 150}, response, id=ident
            )
        else:
            await run_with(flavour, url, "count", {"to": 150, "delay": 0.002}, response, id=ident)
        assert proxy.connections >= 2, "the first connection was cut"
    if kind == "text":
        assert response.printed.getvalue() == ticks(150)
    else:
        # Printed writes pending values first, as "name: value" lines.
        lines = response.printed.getvalue().splitlines()
        assert lines[0] == "count-total: 150"
        assert [json.loads(x) for x in lines[1:]] == [
            {"n": n, "progress": n, "total": 150} for n in range(1, 151)
        ]
    assert response.error is None
    assert record(server.url, str(ident))["run"] == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("how", ["client-made id", "idempotency key"])
async def test_an_answer_dropped_on_the_way_is_joined_and_the_job_runs_once(
    server: ServerProcess, flavour: str, how: str
) -> None:
    key = f"drop-{new_id()}"
    extra = {"idempotency_key": f"k-{key}"} if how == "idempotency key" else {}
    response = ClientResponse()
    with DroppingProxy(server.port, cut=20) as proxy:  # cut inside the status line
        url = f"http://127.0.0.1:{proxy.port}"
        used = await run_with(flavour, url, "tally", {"key": key}, response, **extra)
        assert proxy.connections == 2
    assert response.data["value"] == 1
    assert tally_peek(server.url, key) == 1, "the retry ran the job a second time"
    assert used is not None and record(server.url, used)["run"] == 1


# --- the CLI: exit codes, stdout and stderr -----------------------------------------------

FAILURE_CODES = [
    "error",
    "already-exists",
    "not-found",
    "invalid-request",
    "rate-limit",
    "not-acceptable",
    "request-mismatch",
    "unavailable",
]


@pytest.mark.parametrize("code", FAILURE_CODES)
def test_every_failure_code_exits_1_with_its_message_on_stderr_only(
    server: ServerProcess, code: str
) -> None:
    params = json.dumps({"code": code, "message": f"asked for {code}"})
    exit_code, out, err = gearjobs(server.url, "run", "fail", params, "--tries", "2")
    assert (exit_code, out) == (1, "")
    assert err == f"error ({code}): asked for {code}\n"


def test_a_text_stream_that_fails_midway_exits_1_with_the_message_on_stderr(
    server: ServerProcess,
) -> None:
    code, out, err = gearjobs(server.url, "run", "stream-then-fail", '{"events": false}')
    assert code == 1
    assert "the source went away" in err, f"stderr {err!r}, stdout {out!r}"
    assert out == "one\n"


def test_an_event_stream_that_fails_midway_exits_1_with_the_message_on_stderr(
    server: ServerProcess,
) -> None:
    code, out, err = gearjobs(server.url, "run", "stream-then-fail", '{"events": true}')
    assert (code, out, err) == (1, '{"n": 1}\n', "error (not-found): the source went away\n")


def test_an_unknown_job_name_exits_1_naming_it_on_stderr(server: ServerProcess) -> None:
    code, out, err = gearjobs(server.url, "run", "no-such-job", "{}")
    assert (code, out) == (1, "")
    assert "no-such-job" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "params", ['{"seconds": -1}', '{"lines": 0}', '{"bogus": 1}', '{"seconds": "soon"}']
)
def test_a_bad_parameter_fails_naming_it_on_stderr(server: ServerProcess, params: str) -> None:
    code, out, err = gearjobs(server.url, "run", "sleep", params)
    assert code in (1, 2)
    assert out == ""
    assert repr(next(iter(json.loads(params)))) in err


@pytest.mark.parametrize("params", ['{"a": ', "null", '"text"', "1", "[]", "{'a': 1}"])
def test_params_that_are_not_a_json_object_are_usage_errors(params: str) -> None:
    # No server at all: the CLI must refuse before it sends anything.
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["run", "echo", params, "--server", url, "--tries", "1"])
    assert result.exit_code == 2
    assert "PARAMS" in result.stderr
    assert result.stdout == ""


def test_a_non_ascii_idempotency_key_is_a_usage_error_without_a_traceback(
    server: ServerProcess,
) -> None:
    process = subprocess.run(
        [*CLI, "run", "echo", "{}", "--idempotency-key", "clé", "--server", server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in process.stderr, process.stderr[-400:]
    assert process.returncode == 2
    assert "Idempotency-Key must be 1 to 255 visible ASCII characters" in process.stderr


@pytest.mark.parametrize("key", ["", "has space", "k" * 256])
def test_an_idempotency_key_the_api_refuses_fails_with_one_line(
    server: ServerProcess, key: str
) -> None:
    """Checked before anything is sent, as the API would check it: a usage error."""
    code, out, err = gearjobs(server.url, "run", "echo", "{}", "--idempotency-key", key)
    assert code == 2
    assert out == ""
    assert "Idempotency-Key must be 1 to 255 visible ASCII characters" in err
    assert "Traceback" not in err


def test_an_idempotency_key_joins_with_the_same_request_and_refuses_another(
    server: ServerProcess,
) -> None:
    key, tally = f"key-{new_id()}", f"tally-{new_id()}"
    args = ("run", "tally", json.dumps({"key": tally}), "--idempotency-key", key)
    first = gearjobs(server.url, *args)
    again = gearjobs(server.url, *args)
    assert first == again
    assert json.loads(first[1])["value"] == 1
    code, out, err = gearjobs(
        server.url, "run", "tally", json.dumps({"key": "other"}), "--idempotency-key", key
    )
    assert (code, out) == (1, "")
    assert err.startswith("error (request-mismatch): ")
    assert tally_peek(server.url, tally) == 1


def test_an_idempotency_key_names_the_id_the_readme_says(server: ServerProcess) -> None:
    # README: the id of key K is `sha256(b"idempotency-key\0" + K)[:16]`.
    key = f"readme-{new_id()}"
    code, _, _ = gearjobs(server.url, "run", "echo", "{}", "--idempotency-key", key)
    assert code == 0
    digest = hashlib.sha256(b"idempotency-key\0" + key.encode()).digest()[:16]
    ident = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    code, out, err = gearjobs(server.url, "status", ident)
    assert code == 0, err
    assert json.loads(out)["name"] == "echo"


def test_the_same_id_with_other_params_exits_1_request_mismatch(server: ServerProcess) -> None:
    ident = new_id()
    assert gearjobs(server.url, "run", "echo", '{"a": 1}', "--id", ident)[0] == 0
    code, out, err = gearjobs(server.url, "run", "echo", '{"a": 2}', "--id", ident)
    assert (code, out) == (1, "")
    assert err.startswith("error (request-mismatch): ")


def test_a_repeated_failure_replays_the_same_exit_code_and_stderr(server: ServerProcess) -> None:
    ident = new_id()
    params = '{"code": "already-exists", "message": "dup", "data": {"x": 1}}'
    first = gearjobs(server.url, "run", "fail", params, "--id", ident)
    again = gearjobs(server.url, "run", "fail", params, "--id", ident)
    assert first == again == (1, "", "error (already-exists): dup\n")


def test_table_shows_a_list_of_flat_objects_as_rows(server: ServerProcess) -> None:
    code, out, err = gearjobs(server.url, "run", "rows", "{}", "--table")
    assert (code, err) == (0, "")
    assert [line.split() for line in out.splitlines()] == [
        ["NAME", "SIZE"],
        ["a", "1"],
        ["bb", "22"],
    ]


def test_table_of_data_that_is_no_table_exits_1_not_acceptable(server: ServerProcess) -> None:
    code, out, err = gearjobs(server.url, "run", "echo", '{"nested": {"a": 1}}', "--table")
    assert (code, out) == (1, "")
    assert err.startswith("error (not-acceptable): ")


@pytest.mark.parametrize(
    "server_url", ["localhost:43273", "ftp://127.0.0.1:43273", "", "http://[::1", "127.0.0.1"]
)
@pytest.mark.parametrize("command", [["run", "echo"], ["status", "A" * 22], ["ls"]])
def test_a_bad_server_url_is_a_usage_error(server_url: str, command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--server", server_url, "--tries", "1"])
    assert result.exit_code == 2
    assert "--server" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "command", [["run", "echo"], ["attach", "A" * 22], ["status", "A" * 22], ["ls"]]
)
def test_every_command_exits_3_with_one_line_when_no_server_listens(command: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, [*command, "--server", url, "--tries", "2"])
    assert result.exit_code == 3
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "after 2 tries" in result.stderr


def test_cli_run_through_a_dropping_connection_prints_each_event_once(
    server: ServerProcess,
) -> None:
    with DroppingProxy(server.port, cut=900) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        code, out, err = gearjobs(url, "run", "count", '{"to": 120, "delay": 0.002}')
        assert proxy.connections >= 2
    assert (code, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"n": n, "progress": n, "total": 120} for n in range(1, 121)
    ]


# --- the CLI: live output, a terminal, attach ---------------------------------------------


def test_run_streams_text_lines_as_they_come(
    server: ServerProcess, cli_processes: list[CliProcess]
) -> None:
    ident = new_id()
    run = CliProcess(
        "run", "sleep", '{"seconds": 3, "lines": 3}', "--id", ident, "--server", server.url
    )
    cli_processes.append(run)
    run.wait_for(b"tick 1\n")
    assert record(server.url, ident)["state"] == "running", "tick 1 came only at the end"
    assert run.finish() == (0, ticks(3), "")


def test_run_streams_events_as_json_lines_as_they_come_in_a_pipe(
    server: ServerProcess, cli_processes: list[CliProcess]
) -> None:
    ident = new_id()
    run = CliProcess("run", "count", '{"to": 3, "delay": 1}', "--id", ident, "--server", server.url)
    cli_processes.append(run)
    run.wait_for(b"\n")
    assert record(server.url, ident)["state"] == "running"
    code, out, err = run.finish()
    assert (code, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"n": n, "progress": n, "total": 3} for n in (1, 2, 3)
    ]


def on_a_terminal(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """`python -m gearjobs.cli ARGS` with stdout on a pseudo-terminal; code, terminal, stderr."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [*CLI, *args],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                raise AssertionError(f"the terminal went quiet: {shown!r}")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not data:
                break
            shown += data
        _, err = proc.communicate(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, shown.decode(errors="replace"), err.decode()


def test_run_shows_progress_events_as_a_bar_on_a_terminal(server: ServerProcess) -> None:
    code, shown, err = on_a_terminal(
        "run", "count", '{"to": 5, "delay": 0.05}', "--server", server.url
    )
    assert (code, err) == (0, "")
    assert "5/5" in shown
    assert '"progress"' not in shown, "events with progress were printed as JSON too"


def test_attach_to_a_running_job_replays_it_from_the_start(server: ServerProcess) -> None:
    ident = new_id()
    start_in_background(server.url, "sleep", {"seconds": 3, "lines": 3}, ident)
    with httpx.stream(
        "GET", f"{server.url}/jobs/{ident}/output", headers={"Accept": "text/plain;stream=true"}
    ) as live:
        first = next(live.iter_lines())
    assert first == "tick 1", "tick 1 is in the journal before attach starts"
    assert record(server.url, ident)["state"] == "running"
    assert gearjobs(server.url, "attach", ident) == (0, ticks(3), "")
    assert record(server.url, ident)["run"] == 1


def test_attach_to_a_failed_job_exits_1_with_its_message_on_stderr(server: ServerProcess) -> None:
    ident = new_id()
    gearjobs(server.url, "run", "fail", '{"code": "not-found", "message": "gone"}', "--id", ident)
    assert gearjobs(server.url, "attach", ident) == (1, "", "error (not-found): gone\n")


def test_attach_to_a_stream_that_failed_midway_exits_1(server: ServerProcess) -> None:
    ident = new_id()
    gearjobs(server.url, "run", "stream-then-fail", '{"events": true}', "--id", ident)
    code, out, err = gearjobs(server.url, "attach", ident)
    assert (code, out, err) == (1, '{"n": 1}\n', "error (not-found): the source went away\n")


def test_attach_to_an_unknown_id_exits_1_with_one_line_on_stderr(server: ServerProcess) -> None:
    code, out, err = gearjobs(server.url, "attach", new_id())
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("error (not-found): ")


# --- status and ls -------------------------------------------------------------------------


def test_status_shows_a_running_job_and_then_its_end(server: ServerProcess) -> None:
    ident = new_id()
    start_in_background(server.url, "sleep", {"seconds": 1.5, "lines": 1}, ident)
    code, out, err = gearjobs(server.url, "status", ident)
    assert (code, err) == (0, "")
    running = json.loads(out)
    assert (running["id"], running["name"], running["state"]) == (ident, "sleep", "running")
    assert running["status"] is None
    wait_until(state_is(server.url, ident, "succeeded"), "the job's end")
    done = json.loads(gearjobs(server.url, "status", ident)[1])
    assert (done["state"], done["status"], done["user"]) == ("succeeded", 202, "anonymous")


def test_status_of_a_failed_job_shows_its_status(server: ServerProcess) -> None:
    ident = new_id()
    gearjobs(server.url, "run", "fail", '{"code": "already-exists"}', "--id", ident)
    code, out, _ = gearjobs(server.url, "status", ident)
    assert code == 0
    assert {k: json.loads(out)[k] for k in ("state", "status")} == {
        "state": "failed",
        "status": 409,
    }


def test_status_takes_every_form_of_an_id(server: ServerProcess) -> None:
    ident = RequestIdentifier.new()
    gearjobs(server.url, "run", "echo", "{}", "--id", str(ident))
    for form in (str(ident), ident.exact(), ident.hex()):
        code, out, err = gearjobs(server.url, "status", form)
        assert (code, err) == (0, "")
        assert json.loads(out)["id"] == str(ident)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess("--examples", "--store", "memory://", cwd=tmp_path) as s:
        yield s


def test_ls_lists_newest_first_and_filters(fresh: ServerProcess) -> None:
    url = fresh.url
    ids = {}
    for name, params in [("echo", "{}"), ("fail", '{"code": "error"}'), ("tally", '{"key": "l"}')]:
        ids[name] = new_id()
        gearjobs(url, "run", name, params, "--id", ids[name])
    code, out, err = gearjobs(url, "ls")
    assert (code, err) == (0, "")
    header, *rows = [line.split() for line in out.splitlines()]
    assert header == ["ID", "NAME", "STATE", "STATUS", "USER", "CREATED"]
    assert [row[:5] for row in rows] == [
        [ids["tally"], "tally", "succeeded", "200", "anonymous"],
        [ids["fail"], "fail", "failed", "500", "anonymous"],
        [ids["echo"], "echo", "succeeded", "200", "anonymous"],
    ]
    code, out, _ = gearjobs(url, "ls", "--state", "failed")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["fail"]
    code, out, _ = gearjobs(url, "ls", "--name", "echo", "--json")
    assert [j["id"] for j in json.loads(out)] == [ids["echo"]]
    code, out, _ = gearjobs(url, "ls", "--json", "--limit", "2")
    assert [j["name"] for j in json.loads(out)] == ["tally", "fail"]


# --- servers that are busy, crash, or forget --------------------------------------------------


def busy_server(tmp_path: Path, long_seconds: float) -> tuple[ServerProcess, threading.Thread]:
    """One slow worker, a slow queue of one: a running sleep and a queued one fill it."""
    s = ServerProcess(
        "--examples",
        "--store",
        "memory://",
        "--concurrent",
        "1",
        "--queue-slow",
        "1",
        cwd=tmp_path,
    ).start()
    running, queued = new_id(), new_id()
    start_in_background(s.url, "sleep", {"seconds": long_seconds, "lines": 1}, running)
    wait_until(state_is(s.url, running, "running"), "the first job to run")

    def wait_in_the_queue() -> None:
        with contextlib.suppress(httpx.TransportError):  # the server was stopped under it
            httpx.post(
                f"{s.url}/jobs/sleep",
                json={"seconds": 0, "lines": 1},
                headers={"X-Request-Id": queued},
                timeout=120,
            )

    waiter = threading.Thread(target=wait_in_the_queue)
    waiter.start()
    wait_until(state_is(s.url, queued, "queued"), "the second job to queue")
    return s, waiter


def test_cli_run_on_a_full_queue_waits_retry_after_then_runs(tmp_path: Path) -> None:
    s, waiter = busy_server(tmp_path, long_seconds=2)
    try:
        began = time.monotonic()
        code, out, err = gearjobs(s.url, "run", "sleep", '{"seconds": 0, "lines": 1}')
        took = time.monotonic() - began
    finally:
        s.kill()
        waiter.join(30)
    assert (code, out, err) == (0, "tick 1\n", "")
    assert took >= 0.95, "the 429's Retry-After (1 s) was not waited"


def test_cli_run_on_a_queue_that_stays_full_stops_after_its_tries_leaving_no_job(
    tmp_path: Path,
) -> None:
    s, waiter = busy_server(tmp_path, long_seconds=60)
    try:
        ident = new_id()
        began = time.monotonic()
        code, out, err = gearjobs(
            s.url, "run", "sleep", '{"seconds": 0, "lines": 1}', "--id", ident, "--tries", "2"
        )
        took = time.monotonic() - began
        assert httpx.get(f"{s.url}/jobs/{ident}").status_code == 404, "a 429 remembers nothing"
    finally:
        s.kill()
        waiter.join(30)
    assert 0.95 <= took < 10
    assert code in (1, 3)
    assert out == ""
    assert err.count("\n") == 1 and ("rate-limit" in err or "429" in err)


def test_a_repeat_after_retention_says_ran_to_completion_and_does_not_run(
    tmp_path: Path,
) -> None:
    with ServerProcess("--examples", "--store", "memory://", "--retention", "1", cwd=tmp_path) as s:
        ident, key = new_id(), f"rtc-{new_id()}"
        params = json.dumps({"key": key})
        code, out, _ = gearjobs(s.url, "run", "tally", params, "--id", ident)
        assert (code, json.loads(out)["value"]) == (0, 1)
        wait_until(lambda: record(s.url, ident)["kept"] is False, "the record's retention")
        code, out, err = gearjobs(s.url, "run", "tally", params, "--id", ident)
        assert (code, out) == (1, "")
        assert "This job has run to completion." in err
        assert tally_peek(s.url, key) == 1


def crashable(tmp_path: Path, port: int) -> ServerProcess:
    return ServerProcess(
        "--examples", "--store", f"sqlite:///{tmp_path}/crash.db", port=port, cwd=tmp_path
    )


def test_cli_run_through_a_server_crash_gets_every_line_once(
    tmp_path: Path, cli_processes: list[CliProcess]
) -> None:
    port = free_port()
    first = crashable(tmp_path, port).start()
    second = crashable(tmp_path, port)
    try:
        ident = new_id()
        run = CliProcess(
            "run",
            "sleep",
            '{"seconds": 2, "lines": 4}',
            "--id",
            ident,
            "--server",
            first.url,
            "--tries",
            "10",
        )
        cli_processes.append(run)
        run.wait_for(b"tick 1\n")
        first.kill()
        second.start()
        code, out, err = run.finish()
        assert (code, out, err) == (0, ticks(4), "")
        assert record(second.url, ident)["run"] == 2, "the lost job ran again on retry"
    finally:
        first.kill()
        second.kill()


def test_cli_attach_to_a_job_lost_in_a_crash_exits_1_with_the_failure_on_stderr(
    tmp_path: Path, cli_processes: list[CliProcess]
) -> None:
    port = free_port()
    first = crashable(tmp_path, port).start()
    second = crashable(tmp_path, port)
    try:
        ident = new_id()
        start_in_background(first.url, "sleep", {"seconds": 10, "lines": 10}, ident)
        attach = CliProcess("attach", "--server", first.url, "--tries", "7", ident)
        cli_processes.append(attach)
        attach.wait_for(b"tick 1\n")
        first.kill()
        second.start()
        code, out, err = attach.finish()
        assert record(second.url, ident)["state"] == "lost"
    finally:
        first.kill()
        second.kill()
    assert all(line.startswith("tick ") for line in out.splitlines()), f"stdout: {out!r}"
    assert code == 1, f"exit {code}; stdout {out!r}; stderr {err!r}"
    assert "unavailable" in err
