"""Dispatcher throughput and journal memory, against baselines measured in the same run.

    python bench/dispatch.py [--jobs 50000] [--clients 256] [--workers 16] [--repeat 3]

1. No-op jobs per second through the whole dispatcher (dedupe, journal, queue, record in the
   memory store), against a bare asyncio.Queue with the same number of worker tasks, each job
   carrying a future that its client awaits. Both run with the same number of concurrent
   clients. Prints the ratio (goal >= 0.5).
   A skeleton of the same design with nothing checked (a dict for dedupe, a record row at
   the claim and at the end, one journal entry, idle workers) runs too: it shows the least
   such a dispatcher costs in CPython, so the gap to it is what the dispatcher's own
   structure costs.
2. Memory of 1,000 readers following one job that streams 10 MB (tracemalloc peak over the
   run), against the goal of the output size + 32 KiB per reader.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import tracemalloc
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gearjobs import Dispatcher, RequestIdentifier, Response, ResponseSuccess
from gearjobs.store import MemoryStore


class NoOp:
    """The cheapest job there is: an async success with nothing to say."""

    fast = True

    async def execute(self, response: Response) -> None:
        response.success(ResponseSuccess.OK)


async def drive(clients: int, jobs: int, one: Callable[[], Awaitable[object]]) -> float:
    """Run `jobs` calls of `one` from `clients` concurrent loops; return jobs per second."""
    per_client = jobs // clients

    async def client() -> None:
        for _ in range(per_client):
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return per_client * clients / (time.perf_counter() - started)


async def bare_queue(jobs: int, clients: int, workers: int) -> float:
    queue: asyncio.Queue[tuple[Callable[[], None], asyncio.Future[None]]] = asyncio.Queue()

    async def worker() -> None:
        while True:
            func, done = await queue.get()
            func()
            done.set_result(None)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    loop = asyncio.get_running_loop()

    def noop() -> None:
        pass

    async def one() -> None:
        done = loop.create_future()
        queue.put_nowait((noop, done))
        await done

    try:
        return await drive(clients, jobs, one)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Skeleton:
    """The least a dispatcher of this design does, with nothing checked: a floor, not a product.

    A dict of live jobs by (user, id) for dedupe, a record row written at the claim and again
    at the end (with the answer encoded), a journal of one entry, a queue with idle workers,
    and a future for each waiting client. No store interface, no records as objects, no
    response rules, no observers, no cancellation guard.
    """

    def __init__(self, workers: int) -> None:
        self.active: dict[tuple[str, bytes], list[Any]] = {}
        self.rows: dict[tuple[str, bytes], tuple[Any, ...]] = {}
        self.items: deque[list[Any]] = deque()
        self.idle: deque[asyncio.Future[None]] = deque()
        self.tasks = [asyncio.ensure_future(self.work()) for _ in range(workers)]

    def dispatch(self, ident: bytes) -> list[Any]:
        key = ("anonymous", ident)
        if key in self.active:
            raise SystemExit("the skeleton runs each id once")
        self.rows[key] = ("anonymous", ident, "noop", "queued", time.time())
        run: list[Any] = [key, None, None]  # key, answer, waiting clients
        self.active[key] = run
        self.items.append(run)
        while self.idle:
            idle = self.idle.popleft()
            if not idle.done():
                idle.set_result(None)
                break
        return run

    async def wait(self, run: list[Any]) -> Any:
        if run[1] is not None:
            return run[1]
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        run[2] = [done] if run[2] is None else [*run[2], done]
        return await done

    async def work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.items:
                idle: asyncio.Future[None] = loop.create_future()
                self.idle.append(idle)
                await idle
            run = self.items.popleft()
            await self.execute(run)
            key = run[0]
            answer = orjson.dumps({"k": "ok", "b": "none"})
            self.rows[key] = ("anonymous", key[1], "noop", "succeeded", time.time(), answer)
            del self.active[key]

    async def execute(self, run: list[Any]) -> None:
        run[1] = answer = ("ok", None)
        for waiting in run[2] or ():
            waiting.set_result(answer)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


async def skeleton_rate(jobs: int, clients: int, workers: int) -> float:
    skeleton = _Skeleton(workers)
    ids = iter([os.urandom(16) for _ in range(jobs)])

    async def one() -> None:
        await skeleton.wait(skeleton.dispatch(next(ids)))

    try:
        return await drive(clients, jobs, one)
    finally:
        skeleton.close()


async def dispatcher_rate(jobs: int, clients: int, workers: int) -> float:
    async with Dispatcher(
        store=MemoryStore(), concurrent=workers, queue_fast=clients * 2
    ) as dispatcher:
        job = NoOp()
        # The clients' ids are made before the clock starts: making ids is not dispatching.
        ids = iter([RequestIdentifier.new() for _ in range(jobs)])

        async def one() -> None:
            handle = await dispatcher.dispatch(next(ids), job, fingerprint="noop")
            await handle

        return await drive(clients, jobs, one)


class Stream10MB:
    """Streams 10 MB in 64 KiB chunks, yielding to the loop between chunks."""

    fast = False
    size = 10 * 1024 * 1024
    chunk = 64 * 1024

    async def execute(self, response: Response) -> None:
        writer = response.success_with_write(ResponseSuccess.OK, True, False)
        for i in range(self.size // self.chunk):
            writer.write(bytes([i % 256]) * self.chunk)
            await asyncio.sleep(0)


async def subscriber_memory(readers: int) -> tuple[int, int]:
    """Peak traced memory while `readers` follow one 10 MB stream; returns (peak, output)."""
    async with Dispatcher(store=MemoryStore()) as dispatcher:
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        handle = await dispatcher.dispatch(RequestIdentifier.new(), Stream10MB())
        received = [0] * readers

        async def read(i: int) -> None:
            async for entry in handle.follow():
                data = getattr(entry, "data", b"")
                if isinstance(data, bytes):
                    received[i] += len(data)

        await asyncio.gather(*(read(i) for i in range(readers)))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if set(received) != {Stream10MB.size}:
            raise SystemExit(f"readers received {set(received)} bytes, not {Stream10MB.size}")
        return peak - before, Stream10MB.size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readers", type=int, default=1000)
    args = parser.parse_args()

    bare, skeleton, ours = [], [], []
    for _ in range(args.repeat):  # interleaved, so drift on a noisy machine hits all three
        bare.append(await bare_queue(args.jobs, args.clients, args.workers))
        skeleton.append(await skeleton_rate(args.jobs, args.clients, args.workers))
        ours.append(await dispatcher_rate(args.jobs, args.clients, args.workers))
    b, s, o = statistics.median(bare), statistics.median(skeleton), statistics.median(ours)
    n = args.repeat
    print(f"bare asyncio.Queue + {args.workers} workers: {b:,.0f} jobs/s (median of {n})")
    print(f"dispatcher skeleton (a floor, no checks): {s:,.0f} jobs/s (median of {n})")
    print(f"gearjobs Dispatcher (memory store):   {o:,.0f} jobs/s (median of {n})")
    print(f"ratio dispatcher / bare queue: {o / b:.2f}  (goal >= 0.5)")
    print(f"ratio skeleton / bare queue: {s / b:.2f};  dispatcher / skeleton: {o / s:.2f}")

    peak, output = await subscriber_memory(args.readers)
    budget = output + 32 * 1024 * args.readers
    print(
        f"{args.readers} readers of a {output / 2**20:.0f} MiB stream: "
        f"peak {peak / 2**20:.1f} MiB; "
        f"budget {budget / 2**20:.1f} MiB (output + 32 KiB/reader); "
        f"per reader beyond the output: {(peak - output) / args.readers / 1024:.1f} KiB"
    )


if __name__ == "__main__":
    asyncio.run(main())
