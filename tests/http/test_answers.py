"""API.md, "What the client wants back" and "Answers": negotiation, statuses and bodies."""

import gzip
import json

import httpx
import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.jobs import ResponseFailure

STREAM = {"Accept": "application/json;stream=true"}


async def test_json_is_the_answer_for_json_none_or_anything(client: httpx.AsyncClient) -> None:
    for accept in ("application/json", None, "*/*", "text/html, */*;q=0.1"):
        headers = {} if accept is None else {"Accept": accept}
        r = await client.post("/jobs/echo", json={"a": [1]}, headers=headers)
        assert r.status_code == 200, accept
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"echo": {"a": [1]}}


@pytest.mark.parametrize("accept", ["application/json;stream=true", "application/x-ndjson"])
async def test_structured_streams_are_202_ndjson(client: httpx.AsyncClient, accept: str) -> None:
    r = await client.post("/jobs/count", json={"to": 3, "delay": 0}, headers={"Accept": accept})
    assert r.status_code == 202
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["X-Count-Total"] == "3"
    events = [json.loads(line) for line in r.text.splitlines()]
    assert events == [{"n": n, "progress": n, "total": 3} for n in (1, 2, 3)]


async def test_text_streams_are_202_text_plain(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/jobs/sleep",
        json={"seconds": 0, "lines": 3},
        headers={"Accept": "text/plain;stream=true"},
    )
    assert r.status_code == 202
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == "tick 1\ntick 2\ntick 3\n"


async def test_a_stream_the_client_did_not_ask_for_is_204(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/count", json={"to": 2, "delay": 0})
    assert r.status_code == 204
    assert r.content == b""
    ident = r.headers["X-Request-Id"]
    ended = await client.get(f"/jobs/{ident}/output", headers={"Accept": "application/x-ndjson"})
    assert ended.content.count(b"\n") == 2  # the whole stream: its end has been written
    record = (await client.get(f"/jobs/{ident}")).json()
    assert record["status"] == 202


async def test_x_accept_overrides_accept(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/jobs/count",
        json={"to": 1, "delay": 0},
        headers={"Accept": "application/json", "X-Accept": "application/x-ndjson"},
    )
    assert r.status_code == 202
    assert r.headers["content-type"] == "application/x-ndjson"


async def test_an_unknown_accept_is_406_and_runs_nothing(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/tally", json={"key": "n406"}, headers={"Accept": "image/png"})
    assert r.status_code == 406
    assert r.json()["code"] == "not-acceptable"
    peek = await client.post("/jobs/tally", json={"key": "n406", "peek": True})
    assert peek.json()["value"] == 0


async def test_text_plain_renders_a_flat_object_as_a_table(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/tally", json={"key": "t"}, headers={"Accept": "text/plain"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "NAME   VALUE\nkey    t\nvalue  1\nnode   test-node\n"
    ident = r.headers["x-request-id"]
    output = await client.get(f"/jobs/{ident}/output", headers={"Accept": "text/plain"})
    assert (output.status_code, output.text) == (200, r.text)  # a join is negotiated alike


async def test_text_plain_renders_a_list_of_flat_objects_as_rows(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/rows", headers={"Accept": "text/plain"})
    assert r.status_code == 200
    assert r.text == "NAME  SIZE\na     1\nbb    22\n"


async def test_an_empty_object_or_list_is_an_empty_table(client: httpx.AsyncClient) -> None:
    # An empty flat object is a table of no rows (it was a 500, without the request's id).
    for value, text in (({}, "NAME  VALUE\n"), ([], "")):
        r = await client.post("/jobs/data", json={"value": value}, headers={"Accept": "text/plain"})
        assert (r.status_code, r.text) == (200, text)
        assert r.headers["content-type"].startswith("text/plain")


async def test_data_that_cannot_be_a_table_is_406(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/echo", json={"nested": {"a": 1}}, headers={"Accept": "text/plain"})
    assert r.status_code == 406
    assert r.json()["code"] == "not-acceptable"


async def test_success_with_data_is_200_or_202_when_accepted(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/accepted-data")
    assert (r.status_code, r.json()) == (202, {"queued": True})


async def test_success_with_nothing_is_204_or_202_when_accepted(client: httpx.AsyncClient) -> None:
    plain = await client.post("/jobs/nothing")
    assert plain.status_code == 204
    assert plain.content == b""
    assert plain.headers["X-Note"] == "kept"
    accepted = await client.post("/jobs/accepted-none")
    assert accepted.status_code == 202
    assert accepted.content == b""


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("error", 500),
        ("already-exists", 409),
        ("not-found", 404),
        ("invalid-request", 400),
        ("rate-limit", 429),
        ("not-acceptable", 406),
        ("request-mismatch", 422),
        ("unavailable", 503),
    ],
)
async def test_failure_codes_map_to_statuses(
    client: httpx.AsyncClient, code: str, status: int
) -> None:
    r = await client.post("/jobs/fail", json={"code": code, "message": "as asked", "data": [1]})
    assert r.status_code == status
    assert r.json() == {"message": "as asked", "code": code, "data": [1]}
    if status in (429, 503):
        assert r.headers["Retry-After"] == "1"
    else:
        assert "Retry-After" not in r.headers


async def test_a_failure_without_data_omits_it(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/fail", json={"code": "not-found", "message": "gone"})
    assert r.json() == {"message": "gone", "code": "not-found"}


async def test_pending_values_are_headers_on_success_only(client: httpx.AsyncClient) -> None:
    ok = await client.post("/jobs/count", json={"to": 2, "delay": 0}, headers=STREAM)
    assert ok.headers["X-Count-Total"] == "2"
    failed = await client.post("/jobs/fail", json={"code": "error"})
    assert not any(h.lower().startswith("x-count") for h in failed.headers)


async def test_an_unknown_job_name_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/no-such-job", json={})
    assert r.status_code == 404
    assert r.json() == {"message": "no job named 'no-such-job'", "code": "not-found"}


async def test_a_long_unknown_job_name_is_cut_in_the_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/" + "n" * 10_000, json={})
    assert r.status_code == 404
    assert r.json()["message"] == f"no job named {'n' * 100!r}... (10000 characters)"


@pytest.mark.parametrize("coding", ["gzip", "br, gzip", "x-unknown"])
async def test_a_compressed_body_is_415_not_read_as_json(
    client: httpx.AsyncClient, coding: str
) -> None:
    body = gzip.compress(b'{"a": 1}')
    r = await client.post("/jobs/echo", content=body, headers={"Content-Encoding": coding})
    assert r.status_code == 415
    assert r.json()["code"] == "invalid-request"
    assert "Content-Encoding" in r.json()["message"]
    plain = await client.post("/jobs/echo", json={"a": 1}, headers={"Content-Encoding": "identity"})
    assert plain.status_code == 200


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/echo", content=b'{"a": "' + b"x" * 200_000 + b'"}')
    assert r.status_code == 413
    assert "limit" in r.json()["message"]


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b'"text"', b"{not json", b"\xff\xfe", b"[" * 100_000, b'{"a": NaN}', b"1e999999"],
)
async def test_a_body_that_is_not_a_json_object_is_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    r = await client.post("/jobs/echo", content=body)
    assert r.status_code in (400, 413)
    assert r.json()["code"] == "invalid-request"


async def test_an_empty_body_means_no_parameters(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/echo")
    assert (r.status_code, r.json()) == (200, {"echo": {}})


async def test_a_shutting_down_server_answers_503_with_retry_after(
    client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    await dispatcher.close()
    r = await client.post("/jobs/echo", json={})
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json()["code"] == ResponseFailure.UNAVAILABLE.value
    health = await client.get("/healthz")
    assert health.status_code == 503


async def test_a_job_that_fails_mid_stream_ends_with_an_error_marker(
    client: httpx.AsyncClient,
) -> None:
    text = await client.post("/jobs/stream-then-fail", json={"events": False}, headers=STREAM)
    assert text.status_code == 202
    assert text.text == "one\n\n$error: not-found: the source went away\n"
    events = await client.post("/jobs/stream-then-fail", json={"events": True}, headers=STREAM)
    lines = [json.loads(line) for line in events.text.splitlines()]
    assert lines == [
        {"n": 1},
        {"$error": {"code": "not-found", "message": "the source went away"}},
    ]


async def test_text_that_utf8_cannot_hold_is_escaped_and_the_failure_recorded(
    client: httpx.AsyncClient,
) -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    events = await client.post("/jobs/raw-file-name", json={"events": True}, headers=STREAM)
    assert events.status_code == 202
    lines = [json.loads(line) for line in events.text.splitlines()]
    message = f"cannot read {name}"
    assert lines == [{"file": name}, {"$error": {"code": "not-found", "message": message}}]
    ident = events.headers["X-Request-Id"]
    record = await client.get(f"/jobs/{ident}")
    assert record.json()["state"] == "failed"
    again = await client.post(
        "/jobs/raw-file-name", json={"events": True}, headers={**STREAM, "X-Request-Id": ident}
    )
    assert again.text == events.text  # the replay, from the store
    text = await client.post("/jobs/raw-file-name", json={"events": False}, headers=STREAM)
    assert text.text == "reading\n\n$error: not-found: cannot read caf\\udce9.txt\n"


async def test_an_unknown_job_name_is_404_whatever_the_body(client: httpx.AsyncClient) -> None:
    for body in (b"[1]", b"{not json", b"x" * 200_000):
        r = await client.post("/jobs/no-such-job", content=body)
        assert r.status_code == 404, body[:10]
    known = await client.post("/jobs/echo", content=b"[1]")
    assert known.status_code == 400


async def test_table_columns_line_up_on_a_terminal_with_wide_characters_and_tabs(
    client: httpx.AsyncClient,
) -> None:
    """Columns were padded by character count: a CJK or emoji cell (two columns on a
    terminal) pushed its row's next cells right, and a tab in a cell broke the columns."""
    rows = [
        {"name": "日本語", "n": 1},
        {"name": "abc", "n": 2},
        {"name": "🎉x", "n": 3},
        {"name": "a\tb", "n": 4},
        {"name": "é", "n": 5},  # e and a combining accent: one column
    ]
    r = await client.post("/jobs/data", json={"value": rows}, headers={"Accept": "text/plain"})
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert "\t" not in r.text
    n_column = [sum(2 if ord(c) > 0x2E80 else 0 if c == "\u0301" else 1 for c in line[:-1])
                for line in lines]  # fmt: skip
    assert len(set(n_column)) == 1, lines  # every row's last cell starts at the same column
    assert [line.split()[-1] for line in lines] == ["N", "1", "2", "3", "4", "5"]
