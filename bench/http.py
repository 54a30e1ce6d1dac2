"""HTTP throughput and latency of `POST /jobs/echo` against a bare Starlette endpoint.

    python bench/http.py [--seconds 10] [--connections 32] [--repeat 3] [--store sqlite]
                         [--stack auto|plain] [--no-hold-answers]

Both servers run under uvicorn with the same settings (one process, log level warning; the
stack `auto` is uvloop and httptools, `plain` the asyncio loop and h11), on
127.0.0.1, driven by the same load generator (wrk, from Debian's `wrk` package) with the same
script: a POST with a fresh X-Request-Id each request. Runs alternate between the two servers;
the medians and the ratios are printed. Goals: throughput >= 0.7 of bare Starlette, p50
latency <= 1.5x.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/http.py`, this file's folder comes first on sys.path, where this file
# would shadow the standard library's `http` package that httpx imports.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import shutil
import statistics
import tempfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    STACKS,
    free_port,
    run_wrk,
    start_bare,
    start_gearjobs,
    start_redis,
    wait_ready,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", choices=["sqlite", "memory", "redis"], default="sqlite")
    parser.add_argument(
        "--stack",
        choices=["auto", "plain"],
        default="auto",
        help="uvicorn's loop and parser for both servers: auto (uvloop, httptools) or plain "
        "(asyncio, h11)",
    )
    parser.add_argument(
        "--no-hold-answers",
        action="store_true",
        help="serve gearjobs with --no-hold-answers (answers sent before their write)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ours_port, bare_port = free_port(), free_port()
        helpers = []
        if args.store == "redis":
            redis_port = free_port()
            helpers.append(start_redis(redis_port, workdir))
            store_url = f"redis://127.0.0.1:{redis_port}/0"
        else:
            store_url = {"sqlite": f"sqlite:///{workdir}/bench.db", "memory": "memory://"}[
                args.store
            ]
        servers = [
            start_gearjobs(
                ours_port,
                store_url,
                workdir,
                args.stack,
                ["--no-hold-answers"] if args.no_hold_answers else [],
            ),
            start_bare(bare_port, args.stack),
            *helpers,
        ]
        try:
            ours_url = f"http://127.0.0.1:{ours_port}/jobs/echo"
            bare_url = f"http://127.0.0.1:{bare_port}/jobs/echo"
            wait_ready(ours_url, servers[0])
            wait_ready(bare_url, servers[1])
            results: dict[str, list[tuple[float, float, float]]] = {"bare": [], "gearjobs": []}
            for _ in range(args.repeat):
                results["bare"].append(run_wrk(bare_url, args.seconds, args.connections))
                results["gearjobs"].append(run_wrk(ours_url, args.seconds, args.connections))
        finally:
            for server in servers:
                server.terminate()
                server.wait(30)

    med = {
        name: tuple(statistics.median(r[i] for r in runs) for i in range(3))
        for name, runs in results.items()
    }
    print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, median of {args.repeat}, "
        f"gearjobs on {args.store}"
        f"{' with --no-hold-answers' if args.no_hold_answers else ' (answers held: the default)'}, "
        f"uvicorn stack {args.stack} ({' '.join(STACKS[args.stack])})"
    )
    for name, (rate, p50, p99) in med.items():
        print(f"{name:>9}: {rate:8,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    (b_rate, b_p50, b_p99), (g_rate, g_p50, g_p99) = med["bare"], med["gearjobs"]
    print(f"throughput ratio gearjobs/bare: {g_rate / b_rate:.2f}  (goal >= 0.7)")
    print(f"p50 latency ratio gearjobs/bare: {g_p50 / b_p50:.2f}  (goal <= 1.5)")
    print(f"p99 latency ratio gearjobs/bare: {g_p99 / b_p99:.2f}")


if __name__ == "__main__":
    main()
