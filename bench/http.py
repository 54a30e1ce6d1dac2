"""HTTP throughput and latency of `POST /jobs/echo` against a bare Starlette endpoint.

    python bench/http.py [--seconds 10] [--connections 32] [--repeat 3] [--store sqlite]

Both servers run under uvicorn with the same settings (one process, log level warning), on
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
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            httpx.post(url, json={}, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


def start_gearjobs(port: int, store: str, workdir: Path) -> subprocess.Popen[bytes]:
    url = {"sqlite": f"sqlite:///{workdir}/bench.db", "memory": "memory://"}[store]
    command = [
        sys.executable, "-m", "gearjobs.cli", "serve", "--examples", "--port", str(port),
        "--store", url, "--log-level", "warning", "--queue-fast", "100000",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=workdir)


def start_bare(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port),
        "--host", "127.0.0.1", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """(requests per second, p50 ms, p99 ms); fails on any non-2xx answer."""
    command = [
        "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
        "-s", str(BENCH / "post_echo.lua"), url,
    ]  # fmt: skip
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw failed answers:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    return rate, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ours_port, bare_port = free_port(), free_port()
        servers = [start_gearjobs(ours_port, args.store, workdir), start_bare(bare_port, workdir)]
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
    )
    for name, (rate, p50, p99) in med.items():
        print(f"{name:>9}: {rate:8,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    (b_rate, b_p50, b_p99), (g_rate, g_p50, g_p99) = med["bare"], med["gearjobs"]
    print(f"throughput ratio gearjobs/bare: {g_rate / b_rate:.2f}  (goal >= 0.7)")
    print(f"p50 latency ratio gearjobs/bare: {g_p50 / b_p50:.2f}  (goal <= 1.5)")
    print(f"p99 latency ratio gearjobs/bare: {g_p99 / b_p99:.2f}")


if __name__ == "__main__":
    main()
