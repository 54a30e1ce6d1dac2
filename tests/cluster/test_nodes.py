"""Three real `gearjobs serve` processes on different ports sharing one real redis-server."""

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gearjobs.jobs import RequestIdentifier

from ..redis_server import RedisServer
from ..servers import ServerProcess

NDJSON = {"Accept": "application/x-ndjson"}
TEXT = {"Accept": "text/plain;stream=true"}
LEASE = 1.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def nodes(redis: RedisServer, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    store = f"{redis.url}?lease={LEASE}"
    servers = [ServerProcess("--examples", "--store", store, cwd=tmp_path) for _ in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()


async def test_300_requests_for_one_id_over_three_nodes_run_it_once(
    nodes: list[ServerProcess],
) -> None:
    ident = str(RequestIdentifier.new())
    clients = [httpx.AsyncClient(base_url=n.url, timeout=60) for n in nodes]
    try:
        answers = await asyncio.gather(
            *(
                clients[i % 3].post(
                    "/jobs/tally", json={"key": "cluster"}, headers={"X-Request-Id": ident}
                )
                for i in range(300)
            )
        )
        peeks = [
            (await c.post("/jobs/tally", json={"key": "cluster", "peek": True})).json()["value"]
            for c in clients
        ]
    finally:
        for client in clients:
            await client.aclose()
    assert sum(peeks) == 1, f"the tallies of the three nodes are {peeks}"
    assert len({(a.status_code, a.content) for a in answers}) == 1
    assert answers[0].status_code == 200


async def test_a_join_through_another_node_gets_the_whole_stream(
    nodes: list[ServerProcess],
) -> None:
    ident = str(RequestIdentifier.new())
    body = {"to": 25, "delay": 0.02}
    headers = {"X-Request-Id": ident, **NDJSON}
    async with (
        httpx.AsyncClient(base_url=nodes[0].url, timeout=60) as first,
        httpx.AsyncClient(base_url=nodes[1].url, timeout=60) as second,
        first.stream("POST", "/jobs/count", json=body, headers=headers) as running,
    ):
        lines = running.aiter_lines()
        assert json.loads(await anext(lines))["n"] == 1
        joined = await second.post("/jobs/count", json=body, headers=headers)
        output = await second.get(f"/jobs/{ident}/output", headers=NDJSON)
        rest = [line async for line in lines]
    expected = [{"n": n, "progress": n, "total": 25} for n in range(1, 26)]
    assert joined.status_code == 202
    assert joined.headers["X-Count-Total"] == "25"
    assert [json.loads(x) for x in joined.text.splitlines()] == expected
    assert output.content == joined.content
    assert len(rest) == 24


def _follow(url: str, ident: str, out: list[bytes], started: threading.Event) -> None:
    with httpx.stream("GET", f"{url}/jobs/{ident}/output", headers=TEXT, timeout=60) as answer:
        for chunk in answer.iter_bytes():
            out.append(chunk)
            started.set()


def test_kill_9_of_the_running_node_ends_joined_streams_lost_and_a_retry_runs_elsewhere(
    nodes: list[ServerProcess],
) -> None:
    runner, other, _ = nodes
    ident = str(RequestIdentifier.new())
    body = {"seconds": 60, "lines": 60}
    started = httpx.post(f"{runner.url}/jobs/sleep", json=body, headers={"X-Request-Id": ident})
    assert started.status_code == 204  # the job runs on: tick 1 comes after a second
    received: list[bytes] = []
    following = threading.Event()
    thread = threading.Thread(target=_follow, args=(other.url, ident, received, following))
    thread.start()
    assert following.wait(30), "the joined stream through the other node began"
    runner.kill()
    thread.join(30)
    assert not thread.is_alive(), "the joined stream ended"
    text = b"".join(received).decode()
    assert text.startswith("tick 1\n")
    assert "\n$error: unavailable: " in text, text
    record = httpx.get(f"{other.url}/jobs/{ident}").json()
    assert record["state"] == "lost"
    retry = httpx.post(
        f"{other.url}/jobs/sleep", json={**body}, headers={"X-Request-Id": ident}, timeout=5
    )
    assert retry.status_code == 204
    again = httpx.get(f"{other.url}/jobs/{ident}").json()
    other_node = httpx.get(f"{other.url}/healthz").json()["node"]
    assert (again["run"], again["node"]) == (2, other_node)
    assert again["state"] in ("queued", "running")


def test_while_redis_is_gone_requests_fail_503_and_serve_again_when_it_returns(
    nodes: list[ServerProcess], redis: RedisServer
) -> None:
    node = nodes[0]
    ok = httpx.post(f"{node.url}/jobs/echo", json={"before": True})
    assert ok.status_code == 200
    redis.stop()
    down = httpx.post(f"{node.url}/jobs/echo", json={"during": True}, timeout=30)
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "1"
    assert "unreachable" in down.json()["message"]
    assert httpx.get(f"{node.url}/healthz", timeout=30).status_code == 503
    assert httpx.get(f"{node.url}/jobs", timeout=30).status_code == 503
    redis.start()
    for _ in range(100):
        back = httpx.post(f"{node.url}/jobs/echo", json={"after": True}, timeout=30)
        if back.status_code == 200:
            break
        time.sleep(0.1)  # the client side of a retry loop: Redis gives no signal of its return
    assert back.status_code == 200
    assert back.json() == {"echo": {"after": True}}
    for n in nodes:
        assert n.process is not None and n.process.poll() is None, "no server crashed"
