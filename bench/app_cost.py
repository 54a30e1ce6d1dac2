"""The app's own cost of `POST /jobs/echo`, in process, against the bare Starlette endpoint.

    python bench/app_cost.py [--store memory|sqlite] [--requests 20000] [--clients 32]
                             [--repeat 3] [--profile]

Both ASGI apps are called directly (no sockets, no uvicorn) by `--clients` concurrent loops,
each sending one request after another with a fresh `X-Request-Id`, so what is measured is the
application's work a request: for gearjobs the headers, the id, the fingerprint, the
dispatcher, the store and the answer. The two alternate, `--repeat` times; the figures are
medians of microseconds a request. `--profile` prints a cProfile of one more gearjobs run.
This is the tool for A/B runs of a change: the HTTP figures under wrk (`bench/http.py`) add
uvicorn's own cost and the load generator's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

# bench/http.py would shadow the standard library's http package: import from the top.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.bare_app import app as bare_app  # noqa: E402
from gearjobs.dispatcher import Dispatcher  # noqa: E402
from gearjobs.examples import example_jobs  # noqa: E402
from gearjobs.http import create_app  # noqa: E402
from gearjobs.jobs import ExtensionRegistry  # noqa: E402
from gearjobs.store import store_from_url  # noqa: E402

ASGIApp = Callable[..., Any]
BODY = b'{"n": 1}'


async def drive(app: ASGIApp, requests: int, clients: int) -> float:
    """Send `requests` POSTs from `clients` loops; return microseconds a request."""
    per_client = requests // clients
    ids = [os.urandom(16).hex().encode() for _ in range(per_client * clients)]
    sent = [0]

    async def client(first: int) -> None:
        for i in range(first, first + per_client):
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/jobs/echo",
                "raw_path": b"/jobs/echo",
                "query_string": b"",
                "root_path": "",
                "headers": [
                    (b"host", b"127.0.0.1"),
                    (b"content-type", b"application/json"),
                    (b"content-length", b"8"),
                    (b"x-request-id", ids[i]),
                ],
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 43273),
            }

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": BODY, "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start" and message["status"] != 200:
                    raise SystemExit(f"status {message['status']}")
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    sent[0] += 1

            await app(scope, receive, send)

    started = time.perf_counter()
    await asyncio.gather(*(client(c * per_client) for c in range(clients)))
    elapsed = time.perf_counter() - started
    if sent[0] != per_client * clients:
        raise SystemExit(f"{sent[0]} answers for {per_client * clients} requests")
    return elapsed / sent[0] * 1e6


async def with_gearjobs(store_url: str, body: Callable[[ASGIApp], Any]) -> Any:
    dispatcher = Dispatcher(store=store_from_url(store_url), node="bench")
    registry = ExtensionRegistry()
    registry.add(example_jobs(node="bench"))
    app = create_app(dispatcher, registry)
    await dispatcher.start()
    try:
        return await body(app)
    finally:
        await dispatcher.close()
        await dispatcher.store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["memory", "sqlite"], default="sqlite")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    gc.set_threshold(10_000, 10, 10)  # as `gearjobs serve` does
    with tempfile.TemporaryDirectory() as folder:

        def url(run: int) -> str:
            if args.store == "memory":
                return "memory://"
            return f"sqlite:///{folder}/run{run}.db"

        bare, ours = [], []
        for run in range(args.repeat):
            bare.append(await drive(bare_app, args.requests, args.clients))
            ours.append(
                await with_gearjobs(url(run), lambda app: drive(app, args.requests, args.clients))
            )
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"bare Starlette: {b:.1f} us a request ({', '.join(f'{x:.1f}' for x in bare)})")
        print(
            f"gearjobs ({args.store}): {o:.1f} us a request ({', '.join(f'{x:.1f}' for x in ours)})"
        )
        print(f"gearjobs' own work beyond the bare endpoint: {o - b:.1f} us a request")
        if args.profile:
            profile = cProfile.Profile()

            async def profiled(app: ASGIApp) -> None:
                await drive(app, 2_000, args.clients)
                profile.enable()
                await drive(app, args.requests, args.clients)
                profile.disable()

            await with_gearjobs(url(args.repeat), profiled)
            pstats.Stats(profile).sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    asyncio.run(main())
