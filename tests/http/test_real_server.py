"""Against a real `gearjobs serve` under uvicorn: concurrency, streaming joins, restart, crash."""

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gearjobs.jobs import RequestIdentifier

from ..servers import ServerProcess
from .sse import SseEvent, parse_sse

NDJSON = {"Accept": "application/x-ndjson"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess("--examples", "--store", f"sqlite:///{tmp_path}/jobs.db", cwd=tmp_path) as s:
        yield s


async def test_500_concurrent_tallies_with_one_id_add_one(server: ServerProcess) -> None:
    ident = str(RequestIdentifier.new())
    limits = httpx.Limits(max_connections=500)  # all 500 in flight at once
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
        before = await client.post("/jobs/tally", json={"key": "storm", "peek": True})
        assert before.json()["value"] == 0
        answers = await asyncio.gather(
            *(
                client.post("/jobs/tally", json={"key": "storm"}, headers={"X-Request-Id": ident})
                for _ in range(500)
            )
        )
        after = await client.post("/jobs/tally", json={"key": "storm", "peek": True})
    assert after.json()["value"] == 1
    assert len({(a.status_code, a.content) for a in answers}) == 1
    assert answers[0].status_code == 200
    assert answers[0].json() == {"key": "storm", "value": 1, "node": after.json()["node"]}


async def test_a_joiner_gets_the_whole_stream_and_dropping_the_first_client_keeps_it_going(
    server: ServerProcess,
) -> None:
    ident = str(RequestIdentifier.new())
    body = {"to": 30, "delay": 0.02}
    headers = {"X-Request-Id": ident, **NDJSON}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as first,
        first.stream("POST", "/jobs/count", json=body, headers=headers) as answer,
    ):
        assert answer.status_code == 202
        assert answer.headers["transfer-encoding"] == "chunked"
        assert answer.headers["content-type"] == "application/x-ndjson"
        lines = answer.aiter_lines()
        assert json.loads(await anext(lines))["n"] == 1
    # The first client hung up after one event, and closed its connection.
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as second:
        joined = await second.post("/jobs/count", json=body, headers=headers)
        output = await second.get(f"/jobs/{ident}/output", headers=NDJSON)
        record = (await second.get(f"/jobs/{ident}")).json()
    expected = [{"n": n, "progress": n, "total": 30} for n in range(1, 31)]
    assert [json.loads(x) for x in joined.text.splitlines()] == expected
    assert output.content == joined.content
    assert record["state"] == "succeeded"


def _post_text_stream(url: str, ident: str, seen: threading.Event, out: list[bytes]) -> None:
    with httpx.stream(
        "POST",
        f"{url}/jobs/sleep",
        json={"seconds": 1, "lines": 10},
        headers={"X-Request-Id": ident, "Accept": "text/plain;stream=true"},
        timeout=60,
    ) as answer:
        for chunk in answer.iter_bytes():
            out.append(chunk)
            seen.set()


def test_a_second_client_joins_a_running_sleep_from_its_start(server: ServerProcess) -> None:
    ident = str(RequestIdentifier.new())
    seen = threading.Event()
    first: list[bytes] = []
    thread = threading.Thread(target=_post_text_stream, args=(server.url, ident, seen, first))
    thread.start()
    assert seen.wait(30)
    second = httpx.get(
        f"{server.url}/jobs/{ident}/output",
        headers={"Accept": "text/plain;stream=true"},
        timeout=60,
    )
    thread.join(60)
    expected = "".join(f"tick {i}\n" for i in range(1, 11)).encode()
    assert second.content == expected
    assert b"".join(first) == expected


def test_finished_jobs_are_replayed_after_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/jobs.db"
    ident = str(RequestIdentifier.new())
    headers = {"X-Request-Id": ident, **NDJSON}
    with ServerProcess("--examples", "--store", store, cwd=tmp_path) as first:
        port = first.port
        before = httpx.post(f"{first.url}/jobs/count", json={"to": 5, "delay": 0}, headers=headers)
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal.
        assert first.stop() in (0, -15)
    with ServerProcess("--examples", "--store", store, cwd=tmp_path, port=port) as second:
        after = httpx.post(f"{second.url}/jobs/count", json={"to": 5, "delay": 0}, headers=headers)
        tally = httpx.post(f"{second.url}/jobs/tally", json={"key": "count", "peek": True})
    assert (after.status_code, after.content) == (before.status_code, before.content)
    assert after.headers["X-Count-Total"] == "5"
    assert tally.status_code == 200


def test_after_kill_9_finished_jobs_replay_and_running_ones_are_lost_then_rerun(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path}/jobs.db"
    done_id, running_id = str(RequestIdentifier.new()), str(RequestIdentifier.new())
    with ServerProcess("--examples", "--store", store, cwd=tmp_path) as first:
        port = first.port
        done = httpx.post(
            f"{first.url}/jobs/tally", json={"key": "k"}, headers={"X-Request-Id": done_id}
        )
        assert done.json()["value"] == 1
        started = httpx.post(
            f"{first.url}/jobs/sleep",
            json={"seconds": 60, "lines": 2},
            headers={"X-Request-Id": running_id},
        )
        assert started.status_code == 204
        state = httpx.get(f"{first.url}/jobs/{running_id}").json()["state"]
        assert state == "running"
        first.kill()
    with ServerProcess("--examples", "--store", store, cwd=tmp_path, port=port) as second:
        replay = httpx.post(
            f"{second.url}/jobs/tally", json={"key": "k"}, headers={"X-Request-Id": done_id}
        )
        assert (replay.status_code, replay.content) == (200, done.content)
        lost = httpx.get(f"{second.url}/jobs/{running_id}").json()
        assert lost["state"] == "lost"
        rerun = httpx.post(
            f"{second.url}/jobs/sleep",
            json={"seconds": 0, "lines": 2},
            headers={"X-Request-Id": running_id, "Accept": "text/plain;stream=true"},
        )
        assert rerun.status_code == 422, "a retry must be the same request"
        rerun = httpx.post(
            f"{second.url}/jobs/sleep",
            json={"seconds": 60, "lines": 2},
            headers={"X-Request-Id": running_id},
        )
        assert rerun.status_code == 204
        record = httpx.get(f"{second.url}/jobs/{running_id}").json()
        assert record["run"] == 2
        assert record["state"] in ("queued", "running")


async def test_server_sent_events_resume_after_last_event_id_while_the_job_runs(
    server: ServerProcess,
) -> None:
    """A client that lost its connection resumes with the id of the last event it saw: the
    stream goes on from the next entry, live, with no gap and no repeat, to its end."""
    ident = str(RequestIdentifier.new())
    body = {"to": 40, "delay": 0.05}
    sse = {"X-Request-Id": ident, "Accept": "text/event-stream"}
    seen: list[SseEvent] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        async with client.stream("POST", "/jobs/count", json=body, headers=sse) as answer:
            text = ""
            async for piece in answer.aiter_text():
                text += piece
                if text.count("\n\n") >= 5:  # the head and four events: then the line drops
                    break
        seen = parse_sse(text[: text.rindex("\n\n") + 2])
        last = seen[-1].id
        resumed: list[SseEvent] = []
        async with client.stream(
            "GET", f"/jobs/{ident}/output", headers={**sse, "Last-Event-ID": str(last)}
        ) as again:
            assert again.status_code == 200
            text = ""
            async for piece in again.aiter_text():
                text += piece
                if not resumed and "\n\n" in text:
                    resumed = parse_sse(text[: text.index("\n\n") + 2])
                    record = (await client.get(f"/jobs/{ident}")).json()
                    assert record["state"] == "running", "resumed while the job still ran"
        resumed = parse_sse(text)
    assert [e.id for e in resumed] == list(range(last + 1, last + 1 + len(resumed)))
    events = [json.loads(e.data)["n"] for e in [*seen, *resumed] if e.event == "event"]
    assert events == list(range(1, 41))
    assert resumed[-1].event == "end"
