"""Dispatcher throughput and journal memory, against baselines measured in the same run.

    python bench/dispatch.py [--jobs 50000] [--clients 256] [--workers 16] [--repeat 3]

1. No-op jobs per second through the whole dispatcher (dedupe, journal, queue, record in the
   memory store), against a bare asyncio.Queue with the same number of worker tasks, each job
   carrying a future that its client awaits. Both run with the same number of concurrent
   clients. Prints the ratio (goal >= 0.5).
2. Memory of 1,000 readers following one job that streams 10 MB (tracemalloc peak over the
   run), against the goal of the output size + 32 KiB per reader.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable

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


async def dispatcher_rate(jobs: int, clients: int, workers: int) -> float:
    async with Dispatcher(
        store=MemoryStore(), concurrent=workers, queue_fast=clients * 2
    ) as dispatcher:
        job = NoOp()

        async def one() -> None:
            handle = await dispatcher.dispatch(RequestIdentifier.new(), job, fingerprint="noop")
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

    bare, ours = [], []
    for _ in range(args.repeat):  # interleaved, so drift on a noisy machine hits both
        bare.append(await bare_queue(args.jobs, args.clients, args.workers))
        ours.append(await dispatcher_rate(args.jobs, args.clients, args.workers))
    b, o = statistics.median(bare), statistics.median(ours)
    n = args.repeat
    print(f"bare asyncio.Queue + {args.workers} workers: {b:,.0f} jobs/s (median of {n})")
    print(f"gearjobs Dispatcher (memory store):   {o:,.0f} jobs/s (median of {n})")
    print(f"ratio dispatcher / bare queue: {o / b:.2f}  (goal >= 0.5)")

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
