"""Real `gearjobs serve` processes on free loopback ports, for the tests that need one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """One `gearjobs serve` subprocess; stopped by its own handle."""

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        cwd: Path | None = None,
        log_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """`env`: more environment variables; with GEARJOBS_PORT among them, the port goes to
        the server that way instead of as `--port`."""
        self.env = env or {}
        given = int(self.env["GEARJOBS_PORT"]) if "GEARJOBS_PORT" in self.env else port
        self.port: int = given or free_port()
        self.args = args
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        folder = log_dir or cwd or Path.cwd()
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "gearjobs.cli",
            "serve",
            *([] if "GEARJOBS_PORT" in self.env else ["--port", str(self.port)]),
            "--log-level",
            "warning",
            *self.args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # readiness poll: the server gives no other signal that it listens
        self.kill()
        raise RuntimeError(f"server did not become ready: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as a process manager would; wait for a clean exit."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """kill -9."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
