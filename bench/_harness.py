"""Shared parts of the HTTP benchmarks: servers on free loopback ports, and wrk."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until a POST to `url` is answered (the servers give no other signal)."""
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            httpx.post(url, json={}, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


STACKS = {
    "auto": ["--loop", "auto", "--http", "auto"],  # uvloop and httptools (installed with gearjobs)
    "plain": ["--loop", "asyncio", "--http", "h11"],  # the standard library's loop, pure Python
}
"""uvicorn settings, the same for both servers of a comparison."""


def start_gearjobs(
    port: int, store_url: str, workdir: Path, stack: str = "auto", extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gearjobs.cli", "serve", "--examples", "--port", str(port),
        "--store", store_url, "--log-level", "warning", "--queue-fast", "100000", *STACKS[stack],
        *extra,
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL)


def start_bare(port: int, stack: str = "auto") -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port),
        "--host", "127.0.0.1", "--log-level", "warning", *STACKS[stack],
        "--no-access-log",  # as `gearjobs serve` does when its level hides access lines
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT)


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    command = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(workdir),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise SystemExit(f"cannot read wrk's latency {text!r}")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk_command(url: str, seconds: int, connections: int) -> list[str]:
    return [
        "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
        "-s", str(BENCH / "post_echo.lua"), url,
    ]  # fmt: skip


def parse_wrk(out: str) -> tuple[float, float, float]:
    """(requests per second, p50 ms, p99 ms); fails on any non-2xx answer."""
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw failed answers:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if rate is None or p50 is None or p99 is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return float(rate.group(1)), _ms(p50.group(1)), _ms(p99.group(1))


def run_wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    out = subprocess.run(
        wrk_command(url, seconds, connections), capture_output=True, text=True, check=True
    ).stdout
    return parse_wrk(out)


def run_wrk_together(urls: list[str], seconds: int, connections: int) -> float:
    """wrk against every url at once (one wrk each); the summed requests per second."""
    processes = [
        subprocess.Popen(wrk_command(u, seconds, connections), stdout=subprocess.PIPE, text=True)
        for u in urls
    ]
    total = 0.0
    for process in processes:
        out, _ = process.communicate()
        total += parse_wrk(out)[0]
    return total
