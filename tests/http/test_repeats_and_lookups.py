"""API.md, "Repeating a request", "Looking at jobs" and "Users"."""

import asyncio
import base64
import json

import httpx
import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.jobs import RequestIdentifier
from gearjobs.store import JobKey, JobRecord, JobState

from .conftest import SPLIT_TEXT
from .sse import parse_sse

STREAM = {"Accept": "application/x-ndjson"}


def with_id(ident: RequestIdentifier, **headers: str) -> dict[str, str]:
    return {"X-Request-Id": str(ident), **headers}


async def test_a_repeat_gets_the_same_status_headers_and_bytes(client: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    body = {"to": 20, "delay": 0}
    first = await client.post("/jobs/count", json=body, headers=with_id(ident, **STREAM))
    again = await client.post("/jobs/count", json=body, headers=with_id(ident, **STREAM))
    assert first.status_code == again.status_code == 202
    assert first.content == again.content
    assert first.headers["X-Count-Total"] == again.headers["X-Count-Total"] == "20"
    for name in ("echo", "tally"):
        ident = RequestIdentifier.new()
        params = {"key": "repeat"} if name == "tally" else {"x": 1}
        answers = [
            await client.post(f"/jobs/{name}", json=params, headers=with_id(ident))
            for _ in range(3)
        ]
        assert len({(a.status_code, a.content) for a in answers}) == 1


async def test_a_failure_is_repeated_too(client: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    body = {"code": "already-exists", "message": "dup"}
    answers = [await client.post("/jobs/fail", json=body, headers=with_id(ident)) for _ in range(2)]
    assert [a.status_code for a in answers] == [409, 409]
    assert answers[0].content == answers[1].content


async def test_the_same_id_with_other_parameters_is_422(client: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    await client.post("/jobs/echo", json={"a": 1}, headers=with_id(ident))
    other = await client.post("/jobs/echo", json={"a": 2}, headers=with_id(ident))
    assert other.status_code == 422
    assert other.json()["code"] == "request-mismatch"
    other_job = await client.post("/jobs/tally", json={"key": "k"}, headers=with_id(ident))
    assert other_job.status_code == 422


async def test_a_lost_job_runs_again_on_retry(
    client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    ident = RequestIdentifier.new()
    first = await client.post("/jobs/tally", json={"key": "lost"}, headers=with_id(ident))
    assert first.json()["value"] == 1
    await dispatcher.recorded(JobKey("anonymous", ident))
    record = await dispatcher.store.get(JobKey("anonymous", ident))
    assert record is not None
    record.state = JobState.LOST
    await dispatcher.store.finish(record, [])
    retry = await client.post("/jobs/tally", json={"key": "lost"}, headers=with_id(ident))
    assert retry.json()["value"] == 2


async def test_a_remembered_id_past_retention_is_204_ran_to_completion(
    client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    ident = RequestIdentifier.new()
    await client.post("/jobs/echo", json={}, headers=with_id(ident))
    await dispatcher.recorded(JobKey("anonymous", ident))
    record = await dispatcher.store.get(JobKey("anonymous", ident))
    assert record is not None and record.finished_at is not None
    await dispatcher.store.prune(now=record.finished_at + 10, retention=1, remember=100)
    for method, path in (("POST", "/jobs/echo"), ("GET", f"/jobs/{ident}/output")):
        r = await client.request(method, path, json={}, headers=with_id(ident))
        assert r.status_code == 204
        assert r.headers["X-Job-State"] == "ran-to-completion"


async def test_the_record_of_a_job(client: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    await client.post(
        "/jobs/count",
        json={"to": 2, "delay": 0},
        headers={**with_id(ident), "Accept": "application/x-ndjson"},  # to the stream's end
    )
    record = (await client.get(f"/jobs/{ident}")).json()
    assert record["id"] == str(ident)
    assert (record["name"], record["user"], record["state"]) == ("count", "anonymous", "succeeded")
    assert record["status"] == 202
    assert record["created_at"] <= record["started_at"] <= record["finished_at"]
    missing = await client.get(f"/jobs/{RequestIdentifier.new()}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not-found"


async def test_a_running_job_is_shown_running(client: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    task = asyncio.create_task(
        client.post("/jobs/sleep", json={"seconds": 30, "lines": 2}, headers=with_id(ident))
    )
    for _ in range(200):
        r = await client.get(f"/jobs/{ident}")
        if r.status_code == 200 and r.json()["state"] == "running":
            break
        await asyncio.sleep(0.01)
    assert r.json()["state"] == "running"
    assert r.json()["status"] is None
    assert (await task).status_code == 204


async def test_output_replays_the_answer_from_its_start(client: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    body = {"seconds": 0, "lines": 4}
    started = await client.post(
        "/jobs/sleep", json=body, headers=with_id(ident, Accept="text/plain;stream=true")
    )
    output = await client.get(f"/jobs/{ident}/output", headers={"Accept": "text/plain;stream=true"})
    assert output.status_code == 202
    assert output.content == started.content == b"tick 1\ntick 2\ntick 3\ntick 4\n"
    missing = await client.get(f"/jobs/{RequestIdentifier.new()}/output")
    assert missing.status_code == 404


async def test_output_as_server_sent_events_resumes_after_last_event_id(
    client: httpx.AsyncClient,
) -> None:
    ident = RequestIdentifier.new()
    await client.post("/jobs/count", json={"to": 5, "delay": 0}, headers=with_id(ident))
    r = await client.get(f"/jobs/{ident}/output", headers={"Accept": "text/event-stream"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert [e.id for e in events] == list(range(7))
    assert [e.event for e in events] == ["success"] + ["event"] * 5 + ["end"]
    assert json.loads(events[0].data)["pending"] == {"Count-Total": 5}
    assert [json.loads(e.data)["n"] for e in events[1:6]] == [1, 2, 3, 4, 5]
    resumed = await client.get(
        f"/jobs/{ident}/output",
        headers={"Accept": "text/event-stream", "Last-Event-ID": "3"},
    )
    assert parse_sse(resumed.text) == events[4:]
    bad = await client.get(
        f"/jobs/{ident}/output", headers={"Accept": "text/event-stream", "Last-Event-ID": "x"}
    )
    assert bad.status_code == 400


async def test_post_can_answer_with_server_sent_events(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/echo", json={"a": 1}, headers={"Accept": "text/event-stream"})
    assert r.status_code == 200
    events = parse_sse(r.text)
    assert [e.event for e in events] == ["success"]
    assert json.loads(events[0].data)["data"] == {"echo": {"a": 1}}


async def test_the_list_is_newest_first_with_filters_and_pages(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        ident = RequestIdentifier.new()
        ids.append(str(ident))
        name = "echo" if i % 2 == 0 else "tally"
        await client.post(f"/jobs/{name}", json={"key": "k"}, headers=with_id(ident))
    everything = (await client.get("/jobs")).json()
    assert [j["id"] for j in everything["jobs"]] == ids[::-1]
    echoes = (await client.get("/jobs", params={"name": "echo"})).json()
    assert [j["id"] for j in echoes["jobs"]] == [ids[4], ids[2], ids[0]]
    first = (await client.get("/jobs", params={"limit": 2})).json()
    second = (await client.get("/jobs", params={"limit": 2, "cursor": first["cursor"]})).json()
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == ids[::-1][:4]
    done = (await client.get("/jobs", params={"state": "succeeded"})).json()
    assert len(done["jobs"]) == 5


@pytest.mark.parametrize(
    "query", [{"state": "nope"}, {"limit": "0"}, {"limit": "x"}, {"limit": "501"}, {"cursor": "!"}]
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, query: dict[str, str]
) -> None:
    r = await client.get("/jobs", params=query)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid-request"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "forged",
    [
        '[1, "\\ud800"]',  # a lone surrogate: the SQLite store could not bind it (a 500)
        '[1e400, "AAAAAAAAAAAAAAAAAAAAAA"]',  # an infinite time
        '[NaN, "AAAAAAAAAAAAAAAAAAAAAA"]',
        '[true, "AAAAAAAAAAAAAAAAAAAAAA"]',
        '[1, "a"]',  # not a request id
        '[1, "aaaaaaaaaaaaaaaaaaaaaa"]',  # 22 characters, but not as this server writes an id
        '[1, "AAAAAAAAAAAAAAAAAAAAAA", 3]',
        '{"a": 1}',
    ],
)
async def test_a_forged_cursor_is_400_on_every_store(
    client: httpx.AsyncClient, forged: str
) -> None:
    r = await client.get("/jobs", params={"limit": "1", "cursor": _cursor(forged)})
    assert r.status_code == 400
    assert r.json() == {
        "message": "cursor is not one this server gave out",
        "code": "invalid-request",
    }
    assert "X-Request-Id" in r.headers


async def test_a_cursor_the_server_gave_out_is_taken(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await client.post("/jobs/echo", json={"i": i})
    first = (await client.get("/jobs", params={"limit": 2})).json()
    rest = await client.get("/jobs", params={"limit": 2, "cursor": first["cursor"]})
    assert rest.status_code == 200
    assert len(rest.json()["jobs"]) == 1


async def test_healthz_is_200_while_the_server_takes_work(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_unknown_routes_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/nowhere")
    assert r.status_code == 404
    assert r.json()["code"] == "not-found"
    r = await client.delete("/jobs/echo")
    assert r.status_code == 405
    assert "message" in r.json()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # /jobs/{x} names a job to start (POST) and a job to look at (GET, and so HEAD)
        ("DELETE", f"/jobs/{RequestIdentifier.new()}", "GET, HEAD, POST"),
        ("PUT", "/jobs/echo", "GET, HEAD, POST"),
        ("POST", f"/jobs/{RequestIdentifier.new()}/output", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
async def test_a_405_allows_every_method_the_path_takes(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    r = await client.request(method, path)
    assert r.status_code == 405
    assert r.headers["Allow"] == allow
    assert r.json()["code"] == "invalid-request"


ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YTpi"}, {"Authorization": ""}],
)
async def test_with_tokens_a_missing_or_wrong_token_is_401(
    authed: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in (("POST", "/jobs/echo"), ("GET", "/jobs"), ("GET", "/healthz")):
        r = await authed.request(method, path, headers=headers)
        if path == "/healthz":
            assert r.status_code == 200
        else:
            assert r.status_code == 401
            assert "message" in r.json()


async def test_the_token_names_the_user_and_other_users_jobs_are_404(
    authed: httpx.AsyncClient,
) -> None:
    ident = RequestIdentifier.new()
    mine = await authed.post("/jobs/tally", json={"key": "u"}, headers={**ALICE, **with_id(ident)})
    assert mine.status_code == 200
    assert (await authed.get(f"/jobs/{ident}", headers=ALICE)).json()["user"] == "alice"
    for path in (f"/jobs/{ident}", f"/jobs/{ident}/output"):
        assert (await authed.get(path, headers=BOB)).status_code == 404
    assert (await authed.get("/jobs", headers=BOB)).json()["jobs"] == []
    theirs = await authed.post("/jobs/tally", json={"key": "u"}, headers={**BOB, **with_id(ident)})
    assert theirs.json()["value"] == 2, "bob's request with alice's id runs bob's own job"


async def test_records_store_the_user(dispatcher: Dispatcher, authed: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    await authed.post("/jobs/echo", json={}, headers={**BOB, **with_id(ident)})
    record: JobRecord | None = await dispatcher.store.get(JobKey("bob", ident))
    assert record is not None and record.name == "echo"


async def test_a_repeated_post_resumes_its_events_after_last_event_id(
    client: httpx.AsyncClient,
) -> None:
    ident = RequestIdentifier.new()
    headers = with_id(ident, Accept="text/event-stream")
    body = {"to": 4, "delay": 0}
    whole = parse_sse((await client.post("/jobs/count", json=body, headers=headers)).text)
    resumed = await client.post(
        "/jobs/count", json=body, headers={**headers, "Last-Event-ID": str(whole[2].id)}
    )
    assert parse_sse(resumed.text) == whole[3:]


async def test_server_sent_events_carry_pending_values_as_headers(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/jobs/count", json={"to": 2, "delay": 0}, headers={"Accept": "text/event-stream"}
    )
    assert r.headers["X-Count-Total"] == "2"


async def test_refusals_of_a_job_request_carry_its_request_id(
    authed: httpx.AsyncClient,
) -> None:
    ident = str(RequestIdentifier.new())
    for path in ("/jobs/echo", f"/jobs/{ident}", f"/jobs/{ident}/output"):
        method = "POST" if path == "/jobs/echo" else "GET"
        no_token = await authed.request(method, path, headers={"X-Request-Id": ident})
        assert no_token.status_code == 401
        assert no_token.headers["X-Request-Id"] == ident
    bad_accept = await authed.post(
        "/jobs/echo", headers={**ALICE, "X-Request-Id": ident, "Accept": "image/png"}
    )
    assert (bad_accept.status_code, bad_accept.headers["X-Request-Id"]) == (406, ident)


async def test_a_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    r = await client.delete("/jobs/echo")
    assert r.status_code == 405
    assert "POST" in r.headers["Allow"]


async def test_metrics_need_the_token_when_there_are_tokens(authed: httpx.AsyncClient) -> None:
    assert (await authed.get("/metrics")).status_code == 401
    assert (await authed.get("/metrics", headers=ALICE)).status_code == 200
    assert (await authed.get("/healthz")).status_code == 200, "health checks need no token"


@pytest.mark.parametrize("size", [1, 2, 3])
async def test_server_sent_events_carry_characters_split_between_chunks_whole(
    client: httpx.AsyncClient, size: int
) -> None:
    """Each text chunk was decoded on its own, so a character split between two writes came
    as U+FFFD in both events. Now a split character comes whole in the event of the chunk
    that ends it, also in a stream resumed from any event."""
    ident = RequestIdentifier.new()
    sse = {"Accept": "text/event-stream"}
    r = await client.post("/jobs/split-text", json={"size": size}, headers=with_id(ident, **sse))
    events = parse_sse(r.text)
    texts = [e.data for e in events if e.event == "text"]
    assert "".join(texts).replace("\n", "") == SPLIT_TEXT.replace("\n", "")
    assert "\ufffd" not in r.text
    for last in range(1, len(events) - 1):
        resumed = await client.get(
            f"/jobs/{ident}/output", headers={**sse, "Last-Event-ID": str(last)}
        )
        assert parse_sse(resumed.text) == events[last + 1 :], f"resumed after {last}"
        assert resumed.headers["X-Text-Size"] == str(len(SPLIT_TEXT.encode()))


@pytest.mark.parametrize(("job", "body"), [("count", {"to": 2, "delay": 0}), ("echo", {})])
async def test_resuming_at_or_past_the_end_of_a_finished_answer_is_204(
    client: httpx.AsyncClient, job: str, body: dict[str, object]
) -> None:
    """An empty 200 made a browser's EventSource reconnect for ever; 204 tells it to stop.
    A data answer has no `end` event: resuming after its `success` event is the end."""
    ident = RequestIdentifier.new()
    sse = {"Accept": "text/event-stream"}
    events = parse_sse(
        (await client.post(f"/jobs/{job}", json=body, headers=with_id(ident, **sse))).text
    )
    last = events[-1].id
    for after in (last, last + 1, last + 100):
        r = await client.get(f"/jobs/{ident}/output", headers={**sse, "Last-Event-ID": str(after)})
        assert (r.status_code, r.content) == (204, b""), after
    if last == 0:
        return
    before = await client.get(
        f"/jobs/{ident}/output", headers={**sse, "Last-Event-ID": str(last - 1)}
    )
    assert parse_sse(before.text) == events[-1:]


async def test_two_authorization_headers_are_400(authed: httpx.AsyncClient) -> None:
    """The first one won; which of two tokens names the user is not for the server to guess."""
    headers = [("Authorization", "Bearer alice-token"), ("Authorization", "Bearer bob-token")]
    for method, path in (("POST", "/jobs/echo"), ("GET", "/jobs")):
        r = await authed.request(method, path, headers=headers)
        assert r.status_code == 400
        assert r.json()["message"] == "Authorization came more than once"
    same = [("Authorization", "Bearer alice-token")] * 2
    assert (await authed.get("/jobs", headers=same)).status_code == 400
