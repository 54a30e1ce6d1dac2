"""A real redis-server on a free loopback port, for the tests of the Redis store."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from .servers import free_port


class RedisServer:
    """One redis-server subprocess (no persistence), stopped by its own handle."""

    def __init__(self, workdir: Path, port: int | None = None, *options: str) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.options = options
        """More redis-server options, as in `--requirepass secret`."""
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: scripts/check installs it (apt-get)")
        command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            *self.options,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        password = None
        if "--requirepass" in self.options:
            password = self.options[self.options.index("--requirepass") + 1]
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=1, password=password
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    client.close()
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)  # readiness poll: redis-server gives no other signal
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
