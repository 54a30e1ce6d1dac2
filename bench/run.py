"""One benchmark of gearjobs against its peers and against the limits of the machine.

    python bench/run.py            # the real run (several minutes); rewrites its section of
                                   # bench/RESULTS.md
    python bench/run.py --smoke    # tiny sizes, seconds: checks that the harness works

Starts everything on 127.0.0.1: a redis-server, the peers' workers (Celery, RQ, arq, Dramatiq,
Huey, installed from PyPI into the benchmark's own environment `bench/.peers-venv`), gearjobs
servers on SQLite and on Redis, a bare Starlette endpoint. Each case runs `--repeat` times;
medians, min-max and the goals' ratios are reported. See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder holds http.py, which would shadow the standard library's
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from tests.rawhttp import post_many

from bench._harness import (
    ROOT,
    free_port,
    run_wrk,
    start_bare,
    start_gearjobs,
    start_redis,
    wait_ready,
)
from bench.dispatch import bare_queue, dispatcher_rate, skeleton_rate, subscriber_memory

PEER_PACKAGES = {  # each peer gets an environment of its own: their Redis clients disagree
    "celery": ["celery[redis]>=5.3", "packaging"],  # kombu's transport imports packaging
    "rq": ["rq>=1.16"],
    "arq": ["arq>=0.26"],
    "dramatiq": ["dramatiq[redis]>=1.16"],
    "huey": ["huey>=2.5", "redis>=4"],
}
VENVS = ROOT / "bench" / ".peers-venv"
PEERS = list(PEER_PACKAGES)
MARK_START = "<!-- bench/run.py: start -->"
MARK_END = "<!-- bench/run.py: end -->"


def peer_python(name: str) -> Path:
    """The benchmark's own environment for one peer, made (and filled from PyPI) on first use."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    if not (venv / "ready").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *PEER_PACKAGES[name]], check=True)
        (venv / "ready").write_text("")
    return python


@contextmanager
def processes(commands: list[list[str]], env: dict[str, str]) -> Iterator[None]:
    started = [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for c in commands
    ]
    try:
        yield
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def run_peer(name: str, redis_url: str, n: int, latency_n: int) -> tuple[float, float]:
    python = peer_python(name)
    env = {**os.environ, "PEER_REDIS": redis_url, "PYTHONPATH": str(ROOT)}
    workers = _workers_of(name, redis_url)
    with processes([[str(python), *w] for w in workers], env):
        out = subprocess.run(
            [str(python), "-m", "bench.peers.drive", name, str(n), str(latency_n)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["rate"]), float(result["p50_ms"])


def _workers_of(name: str, redis_url: str) -> list[list[str]]:
    """The worker commands a peer module declares (read without importing the peer here)."""
    code = f"import json, bench.peers.{name}_peer as p; print(json.dumps(p.WORKERS))"
    env = {**os.environ, "PEER_REDIS": redis_url, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [str(peer_python(name)), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    workers: list[list[str]] = json.loads(out.stdout)
    return workers


def run_http(port: int, n: int, latency_n: int, connections: int = 32) -> tuple[float, float]:
    """N POSTs of /jobs/echo with fresh ids over keep-alive connections; then round trips."""

    def fresh() -> str:
        return os.urandom(16).hex()

    requests = [("/jobs/echo", {"n": 1}, {"X-Request-Id": fresh()}) for _ in range(n)]
    start = time.perf_counter()
    answers = asyncio.run(post_many(port, requests, connections))
    rate = n / (time.perf_counter() - start)
    if any(a.status != 200 for a in answers):
        raise SystemExit(f"failed answers: {[a.status for a in answers if a.status != 200][:5]}")
    trips = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(latency_n):
            one = time.perf_counter()
            client.post("/jobs/echo", json={"n": 1}, headers={"X-Request-Id": fresh()})
            trips.append(time.perf_counter() - one)
    return rate, statistics.median(trips) * 1000


def replay_rate(workdir: Path, size: int) -> float:
    """MB/s of reading back a finished 10 MB text answer from the SQLite store."""
    from gearjobs.jobs import RequestIdentifier, ResponseSuccess
    from gearjobs.store import (
        ENDED,
        Body,
        Chunk,
        Entry,
        JobKey,
        JobRecord,
        JobState,
        SQLiteStore,
        Succeeded,
    )

    async def go() -> float:
        store = SQLiteStore(workdir / "replay.db")
        await store.open()
        key = JobKey("bench", RequestIdentifier.new())
        record = JobRecord(key, "big", "fp", state=JobState.SUCCEEDED, finished_at=1.0)
        chunk = 64 * 1024
        entries: list[Entry] = [Succeeded(ResponseSuccess.OK, Body.TEXT, {})]
        entries += [Chunk(bytes([i % 256]) * chunk) for i in range(size // chunk)]
        await store.claim(record)
        await store.finish(record, [*entries, ENDED])
        start = time.perf_counter()
        got = 0
        async for batch in store.follow_batches(key):
            got += sum(len(e.data) for e in batch if isinstance(e, Chunk))
        took = time.perf_counter() - start
        await store.close()
        if got != size // chunk * chunk:
            raise SystemExit(f"replayed {got} bytes")
        return got / took / 1e6

    return asyncio.run(go())


def measure(repeat: int, case: Callable[[], tuple[float, ...]]) -> list[tuple[float, ...]]:
    return [case() for _ in range(repeat)]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    n, latency_n, repeat = (args.jobs, 200, args.repeat)
    readers, size, wrk_seconds = 1000, 10 * 1024 * 1024, 10
    if args.smoke:
        n, latency_n, repeat, readers, size, wrk_seconds = 20, 5, 1, 10, 1024 * 1024, 1

    rows: dict[str, list[tuple[float, ...]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis_port = free_port()
        redis = start_redis(redis_port, workdir)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        ports = {
            "sqlite": free_port(),
            "redis": free_port(),
            "bare": free_port(),
            "sqlite-unheld": free_port(),
        }
        servers = [
            start_gearjobs(ports["sqlite"], f"sqlite:///{workdir}/g.db", workdir),
            start_gearjobs(ports["redis"], f"{redis_url}?prefix=bench", workdir),
            start_bare(ports["bare"]),
            start_gearjobs(
                ports["sqlite-unheld"],
                f"sqlite:///{workdir}/unheld.db",
                workdir,
                extra=["--no-hold-answers"],
            ),
        ]
        try:
            for name, process in zip(ports, servers, strict=True):
                wait_ready(f"http://127.0.0.1:{ports[name]}/jobs/echo", process)
            for _ in range(repeat):  # alternate the cases, so drift hits all of them
                for peer in PEERS:
                    rows.setdefault(peer, []).append(run_peer(peer, redis_url, n, latency_n))
                for name in ("sqlite", "redis", "bare"):
                    rows.setdefault(f"http-{name}", []).append(run_http(ports[name], n, latency_n))
                # The HTTP goals, measured as bench/http.py does; and the price of holding
                # answers until written (the default), against --no-hold-answers.
                for name in ("sqlite", "bare", "sqlite-unheld"):
                    url = f"http://127.0.0.1:{ports[name]}/jobs/echo"
                    rows.setdefault(f"wrk-{name}", []).append(run_wrk(url, wrk_seconds, 32))
                rows.setdefault("queue", []).append(
                    (asyncio.run(bare_queue(n * 10, min(256, n), 16)),)
                )
                rows.setdefault("skeleton", []).append(
                    (asyncio.run(skeleton_rate(n * 10, min(256, n), 16)),)
                )
                rows.setdefault("dispatcher", []).append(
                    (asyncio.run(dispatcher_rate(n * 10, min(256, n), 16)),)
                )
            peak, output = asyncio.run(subscriber_memory(readers))
            replay = replay_rate(workdir, size)
        finally:
            for process in [*servers, redis]:
                process.terminate()
                process.wait(30)

    def median(name: str, i: int = 0) -> float:
        return statistics.median(r[i] for r in rows[name])

    fastest = max(PEERS, key=lambda p: median(p))
    budget = output + 32 * 1024 * readers
    lines = [
        MARK_START,
        f"## All in one run — `python bench/run.py{' --smoke' if args.smoke else ''}`",
        "",
        f"Run on {time.strftime('%Y-%m-%d')}: {n} no-op jobs per case and {latency_n} single "
        f"round trips, {repeat} alternating runs (median, min-max); one local Redis; peers with "
        "two workers each (bench/README.md).",
        "",
        "| system | jobs/s end to end | one job round trip, p50 ms |",
        "|---|---|---|",
    ]
    for name in [*PEERS, "http-sqlite", "http-redis", "http-bare"]:
        label = {"http-sqlite": "gearjobs, SQLite (HTTP)", "http-redis": "gearjobs, Redis (HTTP)",
                 "http-bare": "bare Starlette (HTTP limit)"}.get(name, name)  # fmt: skip
        rates = [r[0] for r in rows[name]]
        lats = [r[1] for r in rows[name]]
        lines.append(f"| {label} | {summary(rates)} | {statistics.median(lats):.2f} |")
    for name, label in (
        ("wrk-sqlite", "gearjobs, SQLite"),
        ("wrk-sqlite-unheld", "gearjobs, SQLite, `--no-hold-answers`"),
        ("wrk-bare", "bare Starlette"),
    ):
        rates = [r[0] for r in rows[name]]
        p50 = statistics.median(r[1] for r in rows[name])
        lines.append(f"| {label} under wrk, 32 connections | {summary(rates)} | {p50:.2f} |")
    queue_rates = summary([r[0] for r in rows["queue"]])
    dispatcher_rates = summary([r[0] for r in rows["dispatcher"]])
    skeleton_rates = summary([r[0] for r in rows["skeleton"]])
    lines += [
        f"| bare asyncio.Queue, 16 tasks (dispatch limit) | {queue_rates} | |",
        f"| dispatcher skeleton, nothing checked (a floor) | {skeleton_rates} | |",
        f"| gearjobs Dispatcher in process | {dispatcher_rates} | |",
        "",
        "| goal | ratio | met |",
        "|---|---|---|",
    ]

    def goal(text: str, value: float, ok: bool) -> None:
        lines.append(f"| {text} | {value:.2f} | {'yes' if ok else 'no'} |")

    sqlite_ratio = median("http-sqlite") / median(fastest)
    redis_ratio = median("http-redis") / median(fastest)
    goal(f"SQLite jobs/s >= 3x the fastest peer ({fastest})", sqlite_ratio, sqlite_ratio >= 3)
    goal(f"Redis jobs/s >= 2x the fastest peer ({fastest})", redis_ratio, redis_ratio >= 2)
    # The HTTP goals are measured as bench/http.py measures them (issue 3's benchmark), under
    # wrk. Under the Python client of the rows above, which shares the two cores with the
    # servers, the ratio depends on the client: bare Starlette cost 41 us a request under it
    # and 57 us under wrk, gearjobs 82 us under both (bench/RESULTS.md); it is shown, not
    # judged.
    http_ratio = median("wrk-sqlite") / median("wrk-bare")
    p50_ratio = median("wrk-sqlite", 1) / median("wrk-bare", 1)
    goal("HTTP echo >= 0.7x bare Starlette throughput (wrk)", http_ratio, http_ratio >= 0.7)
    goal("HTTP echo p50 <= 1.5x bare Starlette (wrk)", p50_ratio, p50_ratio <= 1.5)
    unheld_ratio = median("wrk-sqlite-unheld") / median("wrk-bare")
    lines.append(
        f"| (not a goal) the same with `--no-hold-answers` (answers before their write) "
        f"| {unheld_ratio:.2f} | |"
    )
    client_ratio = median("http-sqlite") / median("http-bare")
    lines.append(
        f"| (not a goal) the same throughput ratio under the Python client | {client_ratio:.2f} | |"
    )
    dispatch_ratio = median("dispatcher") / median("queue")
    goal("dispatcher >= 0.5x bare asyncio.Queue", dispatch_ratio, dispatch_ratio >= 0.5)
    goal(
        f"{readers} readers of {output / 2**20:.0f} MiB: memory / (output + 32 KiB each)",
        peak / budget,
        peak <= budget,
    )
    goal(
        f"replay of a finished {size / 2**20:.0f} MiB answer from SQLite: MB/s / 200 "
        f"({replay:,.0f} MB/s)",
        replay / 200,
        replay >= 200,
    )
    lines += ["", MARK_END]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.smoke:
        return
    text = args.output.read_text() if args.output.exists() else "# Benchmark results\n"
    if MARK_START in text:
        before, _, rest = text.partition(MARK_START)
        _, _, after = rest.partition(MARK_END)
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    args.output.write_text(text)


if __name__ == "__main__":
    main()
