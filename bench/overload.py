"""Overload soak: offer twice what the server can run, for 30 s, and check what happens.

    python bench/overload.py [--seconds 30]

Starts `gearjobs serve --examples` on SQLite with 2 slow workers and a slow queue of 4, then
offers 40 `sleep` jobs a second of 0.1 s each (the server can run 20 a second) with fresh ids,
while checking `/healthz` ten times a second. Prints what was accepted and rejected, whether
every 429 carried Retry-After, whether every accepted job completed, and the server's RSS.
The test suite runs the same for 5 s (tests/reliability/test_load.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # this folder holds http.py, which would shadow the standard library's

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gearjobs.jobs import RequestIdentifier


@dataclass
class Offered:
    accepted_ids: list[str] = field(default_factory=list)
    rejected: int = 0
    rejected_without_retry_after: int = 0
    other: int = 0
    health_checks: int = 0
    health_failures: int = 0


async def offer(url: str, *, seconds: float, per_second: int, job_seconds: float) -> Offered:
    """Offer `per_second` sleep jobs a second for `seconds`; check /healthz all along."""
    counts = Offered()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one() -> None:
            ident = str(RequestIdentifier.new())
            r = await client.post(
                "/jobs/sleep",
                json={"seconds": job_seconds, "lines": 1},
                headers={"X-Request-Id": ident},
            )
            if r.status_code == 204:
                counts.accepted_ids.append(ident)
            elif r.status_code == 429:
                counts.rejected += 1
                if r.headers.get("Retry-After") is None:
                    counts.rejected_without_retry_after += 1
            else:
                counts.other += 1

        async def health() -> None:
            while True:
                counts.health_checks += 1
                if (await client.get("/healthz")).status_code != 200:
                    counts.health_failures += 1
                await asyncio.sleep(0.1)  # a check every tenth of a second, by design

        watcher = asyncio.create_task(health())
        tasks = []
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * per_second)
            while sent < due:
                tasks.append(asyncio.create_task(one()))
                sent += 1
            await asyncio.sleep(0.01)  # the pace of the offered load
        await asyncio.gather(*tasks)
        watcher.cancel()
    return counts


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit("no VmRSS")


def main() -> None:
    from tests.servers import ServerProcess

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(
            "--examples", "--store", f"sqlite:///{tmp}/o.db", "--concurrent", "2",
            "--queue-slow", "4", cwd=Path(tmp),
        )  # fmt: skip
        with server:
            assert server.process is not None
            start = time.monotonic()
            result = asyncio.run(
                offer(server.url, seconds=args.seconds, per_second=40, job_seconds=0.1)
            )
            took = time.monotonic() - start
            incomplete = [
                ident
                for ident in result.accepted_ids
                if httpx.get(f"{server.url}/jobs/{ident}").json()["state"] != "succeeded"
            ]
            rss = rss_kib(server.process.pid) / 1024
    offered = len(result.accepted_ids) + result.rejected + result.other
    print(f"{args.seconds:.0f} s at 40 jobs/s offered, 20 jobs/s of capacity ({took:.1f} s in all)")
    print(f"offered {offered}: accepted {len(result.accepted_ids)}, rejected 429 {result.rejected}")
    print(f"429 without Retry-After: {result.rejected_without_retry_after}")
    print(f"other answers: {result.other}")
    print(f"accepted but not completed: {len(incomplete)}")
    print(f"/healthz: {result.health_checks} checks, {result.health_failures} not 200")
    print(f"server RSS at the end: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
