"""The CLI against a real server process."""

import io
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gearjobs.cli import main
from gearjobs.cli._main import serve
from gearjobs.cli._output import TerminalResponse
from gearjobs.jobs import RequestIdentifier, ResponseSuccess
from gearjobs.store import SQLiteStore

from ..servers import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    with ServerProcess("--examples", "--store", f"sqlite:///{tmp}/jobs.db", cwd=tmp) as s:
        yield s


def gearjobs(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--server", server.url], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_run_prints_data_as_json(server: ServerProcess) -> None:
    code, out, _ = gearjobs(server, "run", "echo", '{"a": [1, 2]}')
    assert code == 0
    assert json.loads(out) == {"echo": {"a": [1, 2]}}


def test_run_streams_text(server: ServerProcess) -> None:
    code, out, _ = gearjobs(server, "run", "sleep", '{"seconds": 0.2, "lines": 3}')
    assert (code, out) == (0, "tick 1\ntick 2\ntick 3\n")


def test_run_prints_events_as_json_lines_when_not_on_a_terminal(server: ServerProcess) -> None:
    code, out, _ = gearjobs(server, "run", "count", '{"to": 3, "delay": 0}')
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"n": n, "progress": n, "total": 3} for n in (1, 2, 3)
    ]


def test_run_shows_a_table(server: ServerProcess) -> None:
    code, out, _ = gearjobs(server, "run", "tally", '{"key": "table"}', "--table")
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "VALUE"]
    assert "table" in out


def test_table_mode_on_a_streaming_job_says_why_it_shows_nothing(server: ServerProcess) -> None:
    code, out, err = gearjobs(server, "run", "sleep", '{"seconds": 0, "lines": 2}', "--table")
    assert (code, out) == (0, "")
    assert "run it without --table to see its stream" in err
    code, out, err = gearjobs(server, "run", "sleep", '{"seconds": 0, "lines": 2}')
    assert (code, out, err) == (0, "tick 1\ntick 2\n", "")


def test_a_failed_job_exits_1_with_its_message_on_stderr(server: ServerProcess) -> None:
    code, out, err = gearjobs(server, "run", "fail", '{"code": "not-found", "message": "no such"}')
    assert (code, out) == (1, "")
    assert err == "error (not-found): no such\n"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "echo", "{not json"],
        ["run", "echo", "[1]"],
        ["run", "echo", '{"a": NaN}'],  # Python's json reads it; JSON does not
        ["run", "echo", '{"a": 1e400}'],
        ["run", "echo", '{"a": "\\ud800"}'],  # a lone surrogate, which the server refuses
        ["run", "echo", "--tries", "0"],
        ["run", "echo", "--id", "bad-id"],
        ["run", "echo", "--id", str(RequestIdentifier.new()), "--idempotency-key", "k"],
        ["run"],
        ["status"],
        ["run", "echo", "--bogus-option"],
    ],
)
def test_usage_errors_exit_2(server: ServerProcess, args: list[str]) -> None:
    code, _, _ = gearjobs(server, *args)
    assert code == 2


def test_the_same_id_twice_runs_once(server: ServerProcess) -> None:
    ident = str(RequestIdentifier.new())
    outs = [gearjobs(server, "run", "tally", '{"key": "cli-once"}', "--id", ident) for _ in "ab"]
    assert outs[0] == outs[1]
    assert json.loads(outs[0][1])["value"] == 1
    key = [gearjobs(server, "run", "tally", '{"key": "cli-key"}', "--idempotency-key", "k1")]
    key.append(gearjobs(server, "run", "tally", '{"key": "cli-key"}', "--idempotency-key", "k1"))
    assert json.loads(key[1][1])["value"] == 1


def test_an_unreachable_server_exits_3_with_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["run", "echo", "--server", url, "--tries", "2"])
    assert result.exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert "could not reach the server after 2 tries" in result.stderr
    assert "Traceback" not in result.output


def test_attach_status_and_ls(server: ServerProcess) -> None:
    ident = str(RequestIdentifier.new())
    _, first, _ = gearjobs(server, "run", "sleep", '{"seconds": 0, "lines": 2}', "--id", ident)
    code, attached, _ = gearjobs(server, "attach", ident)
    assert (code, attached) == (0, first)
    code, status, _ = gearjobs(server, "status", ident)
    assert code == 0
    record = json.loads(status)
    assert (record["id"], record["name"], record["state"], record["status"]) == (
        ident,
        "sleep",
        "succeeded",
        202,
    )
    code, listing, _ = gearjobs(server, "ls", "--name", "sleep")
    assert code == 0
    assert ident in listing
    code, _, err = gearjobs(server, "status", str(RequestIdentifier.new()))
    assert code == 1
    assert "no job with id" in err


DASH_ID = str(RequestIdentifier.parse("f8" + "0" * 30))  # one base64 id in 64 starts with "-"


def test_an_id_that_starts_with_a_dash_is_an_id_not_an_option(server: ServerProcess) -> None:
    assert DASH_ID.startswith("-")
    _, first, _ = gearjobs(server, "run", "sleep", '{"seconds": 0, "lines": 1}', "--id", DASH_ID)
    assert first == "tick 1\n"
    assert gearjobs(server, "attach", DASH_ID)[:2] == (0, first)
    code, status, _ = gearjobs(server, "status", DASH_ID)
    assert (code, json.loads(status)["id"]) == (0, DASH_ID)
    result = CliRunner().invoke(main, ["status", "--server", server.url, "--", DASH_ID])
    assert (result.exit_code, json.loads(result.stdout)["id"]) == (0, DASH_ID)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_events_with_progress_show_a_bar_on_a_terminal() -> None:
    out = _Tty()
    response = TerminalResponse(out=out, err=io.StringIO())
    writer = response.success_with_write(ResponseSuccess.OK, True, True)
    for n in range(1, 4):
        writer.write({"n": n, "progress": n, "total": 3})
    writer.write({"note": "no progress here"})
    response.finish()
    text = out.getvalue()
    assert "3/3" in text
    assert '"n": 1' not in text
    assert '{"note": "no progress here"}' in text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "gearjobs.example"])
def test_serve_refuses_a_public_address_without_a_token_file(host: str) -> None:
    # A process of its own with a deadline: a server that started anyway fails the test
    # instead of serving on that address until the suite is killed.
    command = [sys.executable, "-m", "gearjobs.cli", "serve", "--host", host]
    result = subprocess.run(
        [*command, "--port", str(free_port()), "--store", "memory://"],
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert b"without a token file" in result.stderr


def test_serve_stops_at_a_malformed_token_file_with_its_line_number(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# users\nsecret alice\n\nbroken-line\n")
    result = CliRunner().invoke(main, ["serve", "--tokens", str(tokens), "--port", "1"])
    assert result.exit_code == 2
    assert f"{tokens}:4" in result.output


def test_a_token_file_names_users_and_the_cli_sends_a_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-secret alice\nbob-secret bob\n")
    with ServerProcess(
        "--examples", "--store", "memory://", "--tokens", str(tokens), cwd=tmp_path
    ) as s:
        assert httpx.post(f"{s.url}/jobs/echo", json={}).status_code == 401
        code, out, _ = gearjobs(s, "run", "echo", "{}", "--token", "alice-secret")
        assert code == 0
        code, out, _ = gearjobs(s, "ls", "--json", "--token", "alice-secret")
        assert [j["user"] for j in json.loads(out)] == ["alice"]
        code, out, _ = gearjobs(s, "ls", "--json", "--token", "bob-secret")
        assert json.loads(out) == []


def test_a_users_own_jobs_and_routes_load_with_app(tmp_path: Path) -> None:
    # The command the example's docstring gives, so that the two cannot drift apart.
    shown = re.search(r"gearjobs serve --app (\S+)", (REPO / "examples/custom_jobs.py").read_text())
    assert shown is not None
    with ServerProcess(
        "--app",
        shown.group(1),
        "--store",
        "memory://",
        cwd=REPO,
        log_dir=tmp_path,
    ) as s:
        code, out, _ = gearjobs(s, "run", "greet", '{"name": "Ada"}')
        assert (code, json.loads(out)) == (0, {"greeting": "Hello, Ada!"})
        code, out, _ = gearjobs(s, "run", "slow-square", '{"n": 7}')
        assert (code, json.loads(out)) == (0, {"n": 7, "square": 49})
        ident = str(RequestIdentifier.new())
        first = httpx.put(f"{s.url}/squares/7", headers={"X-Request-Id": ident})
        again = httpx.put(f"{s.url}/squares/7", headers={"X-Request-Id": ident})
        assert first.json() == again.json() == {"n": 7, "square": 49}
        other = httpx.put(f"{s.url}/squares/8", headers={"X-Request-Id": ident})
        assert other.status_code == 422
        bad = httpx.put(f"{s.url}/squares/x")
        assert bad.status_code == 400
        assert "'n'" in bad.json()["message"]
        code, _, _ = gearjobs(s, "run", "echo")
        assert code == 1, "no examples on this server: echo is unknown"


@pytest.mark.parametrize(
    "args",
    [
        ["status", "xyz"],
        ["attach", "xyz"],
        ["ls", "--state", "bogus"],
        ["ls", "--limit", "0"],
    ],
)
def test_bad_ids_states_and_limits_are_usage_errors(server: ServerProcess, args: list[str]) -> None:
    code, _, _ = gearjobs(server, *args)
    assert code == 2


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_refuses_a_port_out_of_range(port: str) -> None:
    # A process of its own: a serve that took the port would serve (70000 binds 4464) until
    # the timeout kills it, and the test fails instead of hanging.
    done = subprocess.run(
        [sys.executable, "-m", "gearjobs.cli", "serve", "--store", "memory://", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--port" in done.stderr


def test_a_malformed_server_url_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        main, ["run", "echo", "--server", "http://bad:url:x", "--tries", "1"]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "stack", [["--loop", "asyncio", "--http", "h11"], ["--loop", "uvloop", "--http", "httptools"]]
)
def test_serve_takes_either_loop_and_parser(tmp_path: Path, stack: list[str]) -> None:
    with ServerProcess("--examples", "--store", "memory://", *stack, cwd=tmp_path) as s:
        r = httpx.post(f"{s.url}/jobs/echo", json={"a": 1})
        assert (r.status_code, r.json()) == (200, {"echo": {"a": 1}})


async def test_serve_on_a_file_another_store_writes_says_so_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    holder = SQLiteStore(path)
    await holder.open()
    try:
        result = CliRunner().invoke(main, ["serve", "--store", f"sqlite:///{path}"])
    finally:
        await holder.close()
    assert result.exit_code == 1
    assert "is in use by another process" in result.output
    assert "Traceback" not in result.output


def test_serve_on_a_redis_that_does_not_answer_says_so_and_exits_1() -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(main, ["serve", "--store", url])
    assert result.exit_code == 1
    assert "cannot reach the Redis store at redis://:***@127.0.0.1" in result.output
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output


def _watched(*command: str) -> subprocess.Popen[bytes]:
    """`command` in a child that Ctrl-C reaches (see below), its output piped."""
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )


def _ctrl_c_as_at_a_terminal() -> None:
    """In the child: SIGINT as a terminal delivers it. A suite started in the background
    (`cmd &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("key", [[], ["--idempotency-key", "order-77"]])
def test_ctrl_c_during_run_names_the_job_that_goes_on(
    server: ServerProcess, key: list[str]
) -> None:
    command = [sys.executable, "-m", "gearjobs.cli", "run", "sleep"]
    params = '{"seconds": 1.5, "lines": 3}'
    watcher = _watched(*command, params, *key, "--server", server.url)
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline() == b"tick 1\n"
        watcher.send_signal(signal.SIGINT)
        printed, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
        watcher.communicate()  # closes the pipes
    assert watcher.returncode == 130
    # The newline that ends the last line shown is printed too (it was kept back, as the
    # error marker's beginning, until more came).
    assert printed.endswith(b"\n"), printed
    hint = re.search(rb"gearjobs attach (\S+),", err)
    assert hint is not None, err
    code, out, _ = gearjobs(server, "attach", hint.group(1).decode())
    assert (code, out) == (0, "tick 1\ntick 2\ntick 3\n")


def test_serve_reads_its_options_from_the_environment_and_keeps_its_file_here(
    tmp_path: Path,
) -> None:
    """GEARJOBS_<NAME> for an option; without --store, `gearjobs.db` in the current directory."""
    env = {"GEARJOBS_PORT": str(free_port()), "GEARJOBS_EXAMPLES": "1"}
    with ServerProcess(cwd=tmp_path, env=env) as s:
        assert s.url.endswith(env["GEARJOBS_PORT"])
        code, out, _ = gearjobs(s, "run", "echo", '{"here": true}')
        assert (code, json.loads(out)) == (0, {"echo": {"here": True}})
        assert (tmp_path / "gearjobs.db").exists()


def test_serve_listens_on_43273_unless_told_otherwise() -> None:
    port = next(p for p in serve.params if p.name == "port")
    assert port.default == 43273


def test_ctrl_c_before_the_server_answered_does_not_claim_the_job_goes_on() -> None:
    """Ctrl-C right after the request went out stops the client, every time.

    A blocking socket read missed a SIGINT that came after Python last looked for signals and
    before the read began: the client then waited for ever on a server that says nothing.
    That window is narrow (about one Ctrl-C in twenty sent at this moment fell in it), so
    the client is stopped so again and again.
    """
    params = [sys.executable, "-m", "gearjobs.cli", "run", "echo", "{}", "--id", "0" * 32]
    for _ in range(20):
        with socket.create_server(("127.0.0.1", 0)) as mute:  # takes requests, answers none
            port = mute.getsockname()[1]
            watcher = _watched(*params, "--server", f"http://127.0.0.1:{port}")
            try:
                mute.settimeout(30)
                connection, _ = mute.accept()
                with connection:
                    connection.settimeout(30)
                    assert connection.recv(65536).startswith(b"POST /jobs/echo")
                    watcher.send_signal(signal.SIGINT)
                    _, err = watcher.communicate(timeout=30)
            finally:
                watcher.kill()
                watcher.communicate()  # closes the pipes
        assert watcher.returncode == 130
        assert b"no answer yet" in err and b"goes on" not in err


@pytest.mark.parametrize("binary", [True, False], ids=["to-a-byte-stream", "to-a-text-stream"])
def test_a_character_split_between_chunks_is_printed_whole(binary: bool) -> None:
    """A text stream's chunks end where the job's writes ended, which may be inside a UTF-8
    character: each was decoded on its own, and such a character printed as two U+FFFD."""
    text = "héllo wörld ✓ 日本語\n"
    raw = io.BytesIO()
    out: io.TextIOBase = io.TextIOWrapper(raw, encoding="utf-8") if binary else io.StringIO()
    response = TerminalResponse(out=out, err=io.StringIO())  # type: ignore[arg-type]
    writer = response.success_with_write(ResponseSuccess.OK, True, False)
    encoded = text.encode()
    for i in range(0, len(encoded), 3):
        writer.write(encoded[i : i + 3])
    out.flush()
    printed = raw.getvalue().decode() if binary else out.getvalue()  # type: ignore[attr-defined]
    assert printed == text


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--retention", "inf"),  # on Redis every answer's write failed, then the job was lost
        ("--retention", "nan"),  # nothing was ever pruned
        ("--retention", "1e300"),
        ("--retention", "0"),
        ("--close-timeout", "-1"),
        ("--close-timeout", "nan"),
        ("--body-limit", "-1"),  # every body was 413, "larger than the limit of -1 bytes"
        ("--queue-fast", "0"),
        ("--queue-slow", "-3"),
        ("--concurrent", "0"),
        ("--track-duplicate-ids", "-1"),
    ],
)
def test_serve_refuses_option_values_out_of_range(option: str, value: str) -> None:
    # A process of its own, as above: a serve that took the value would serve until killed.
    command = [sys.executable, "-m", "gearjobs.cli", "serve", "--store", "memory://"]
    done = subprocess.run(
        [*command, "--port", str(free_port()), option, value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert option in done.stderr


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_serve_stops_at_a_token_file_that_lists_no_token(tmp_path: Path, text: str) -> None:
    """Such a server refused every request with 401 and said nothing at start."""
    tokens = tmp_path / "tokens"
    tokens.write_text(text)
    # A process of its own: a serve that took the file would serve until the timeout.
    command = [sys.executable, "-m", "gearjobs.cli", "serve", "--store", "memory://"]
    done = subprocess.run(
        [*command, "--port", str(free_port()), "--tokens", str(tokens)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "lists no token" in done.stderr
