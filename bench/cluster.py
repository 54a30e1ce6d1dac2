"""End-to-end no-op jobs per second through 1 and 2 nodes on Redis, against SQLite on 1 node.

    python bench/cluster.py [--seconds 10] [--connections 32] [--repeat 3]

Every case is `POST /jobs/echo` with a fresh X-Request-Id each request (wrk, from Debian's
`wrk` package), all on 127.0.0.1: one gearjobs node on SQLite (the baseline), one node on a
local redis-server, and two nodes on that redis-server with the load split between them (one
wrk each, half the connections each). Runs alternate; medians and ratios are printed. Mind the
machine: on 2 cores, two nodes, Redis and the load generators share the same two cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder holds http.py, which would shadow the standard library's

import argparse
import shutil
import statistics
import subprocess
import tempfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    free_port,
    run_wrk_together,
    start_gearjobs,
    start_redis,
    wait_ready,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install {tool}")

    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        try:
            redis_port = free_port()
            processes.append(start_redis(redis_port, workdir))
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            ports = {name: free_port() for name in ("sqlite", "redis-a", "redis-b")}
            stores = {
                "sqlite": f"sqlite:///{workdir}/bench.db",
                "redis-a": redis_url,
                "redis-b": redis_url,
            }
            urls = {}
            for name, port in ports.items():
                process = start_gearjobs(port, stores[name], workdir)
                processes.append(process)
                urls[name] = f"http://127.0.0.1:{port}/jobs/echo"
                wait_ready(urls[name], process)
            cases = {
                "sqlite, 1 node": ([urls["sqlite"]], args.connections),
                "redis, 1 node": ([urls["redis-a"]], args.connections),
                "redis, 2 nodes": ([urls["redis-a"], urls["redis-b"]], args.connections // 2),
            }
            rates: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.repeat):
                for name, (targets, connections) in cases.items():
                    rates[name].append(run_wrk_together(targets, args.seconds, connections))
        finally:
            for process in reversed(processes):  # the nodes first, Redis last
                process.terminate()
                process.wait(30)

    print(
        f"POST /jobs/echo, wrk -c{args.connections} in all, -d{args.seconds}s, "
        f"median of {args.repeat}"
    )
    baseline = statistics.median(rates["sqlite, 1 node"])
    for name, values in rates.items():
        median = statistics.median(values)
        spread = f"{min(values):,.0f}-{max(values):,.0f}"
        print(
            f"{name:>15}: {median:8,.0f} jobs/s ({spread})  ratio to SQLite {median / baseline:.2f}"
        )


if __name__ == "__main__":
    main()
