"""Against a real server: duplicate storms, slow and vanished clients, and overload."""

import asyncio
import json
import random
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench.overload import offer

from gearjobs.jobs import RequestIdentifier

from ..rawhttp import post_many
from ..servers import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess("--examples", "--store", f"sqlite:///{tmp_path}/r.db", cwd=tmp_path) as s:
        yield s


async def test_a_storm_of_2000_requests_over_20_ids_runs_each_job_once(
    server: ServerProcess,
) -> None:
    ids = [str(RequestIdentifier.new()) for _ in range(20)]
    order = [ident for ident in ids for _ in range(100)]
    random.Random(7).shuffle(order)
    requests = [
        ("/jobs/tally", {"key": f"storm-{ident}"}, {"X-Request-Id": ident}) for ident in order
    ]
    answers = await asyncio.wait_for(post_many(server.port, requests, connections=100), 120)
    assert len(answers) == 2000, "no request hung"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        peeks = {
            ident: (
                await client.post("/jobs/tally", json={"key": f"storm-{ident}", "peek": True})
            ).json()["value"]
            for ident in ids
        }
    by_id: dict[str, set[tuple[int, bytes]]] = {}
    for ident, answer in zip(order, answers, strict=True):
        by_id.setdefault(ident, set()).add((answer.status, answer.body))
    assert all(len(seen) == 1 for seen in by_id.values()), "every answer for an id is identical"
    assert Counter(code for seen in by_id.values() for code, _ in seen) == {200: 20}
    assert set(peeks.values()) == {1}, "each job ran once"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_clients_that_never_read_or_vanish_hold_no_worker_and_no_buffer(
    server: ServerProcess,
) -> None:
    """Ten clients that never read a 4 MiB event stream, and one that hangs up: the job still
    ends, the server holds the output once (not once per client), and a later join gets it."""
    assert server.process is not None
    ident = str(RequestIdentifier.new())
    body = json.dumps({"to": 100000, "delay": 0}).encode()
    request = (
        "POST /jobs/count HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/x-ndjson\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Request-Id: {ident}\r\n\r\n"
    ).encode() + body
    before = rss_kib(server.process.pid)
    stalled = []
    for _ in range(10):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request)
        stalled.append(sock)
    vanished = socket.create_connection(("127.0.0.1", server.port))
    vanished.sendall(request)
    vanished.recv(1000)
    vanished.close()
    try:
        state = ""
        for _ in range(600):  # the job runs on while its clients do not read
            state = httpx.get(f"{server.url}/jobs/{ident}").json()["state"]
            if state == "succeeded":
                break
            time.sleep(0.05)
        assert state == "succeeded"
        grown_mib = (rss_kib(server.process.pid) - before) / 1024
        output = httpx.get(
            f"{server.url}/jobs/{ident}/output",
            headers={"Accept": "application/x-ndjson"},
            timeout=120,
        )
        lines = output.text.splitlines()
        assert len(lines) == 100000
        assert json.loads(lines[-1]) == {"n": 100000, "progress": 100000, "total": 100000}
        output_mib = len(output.content) / 2**20
        # The journal holds each event once as its JSON line (about 3x the wire size as Python
        # objects) and the SQLite write of the answer briefly twice that; eleven clients that
        # each had a copy would need eleven times the output.
        print(f"stalled clients: grew {grown_mib:.1f} MiB for {output_mib:.1f} MiB of output")
        assert grown_mib < 8 * output_mib + 32, (grown_mib, output_mib)
    finally:
        for sock in stalled:
            sock.close()


def test_twice_the_load_it_can_run_gets_429_at_once_and_everything_accepted_completes(
    tmp_path: Path,
) -> None:
    """Smoke of the overload soak (bench/overload.py runs it for 30 s)."""
    with ServerProcess(
        "--examples",
        "--store",
        f"sqlite:///{tmp_path}/o.db",
        "--concurrent",
        "2",
        "--queue-slow",
        "4",
        cwd=tmp_path,
    ) as s:
        assert s.process is not None
        # 2 workers x 0.1 s jobs = 20 jobs/s can run; 40/s are offered.
        result = asyncio.run(offer(s.url, seconds=5, per_second=40, job_seconds=0.1))
        print(f"overload smoke: {result.rejected} rejected, {len(result.accepted_ids)} accepted")
        assert result.accepted_ids and result.rejected > 0
        assert result.rejected_without_retry_after == 0
        assert result.other == 0
        assert result.health_checks > 10 and result.health_failures == 0
        for ident in result.accepted_ids:
            record = httpx.get(f"{s.url}/jobs/{ident}").json()
            if record["state"] != "succeeded":
                for _ in range(100):
                    record = httpx.get(f"{s.url}/jobs/{ident}").json()
                    if record["state"] == "succeeded":
                        break
                    time.sleep(0.05)
            assert record["state"] == "succeeded"
        rss_mib = rss_kib(s.process.pid) / 1024
        print(f"overload smoke: server RSS {rss_mib:.0f} MiB")
        assert rss_mib < 200, "bounded: the queues hold at most 4 + 1024 jobs"
