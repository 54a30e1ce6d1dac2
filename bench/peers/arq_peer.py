"""arq: a no-op coroutine on Redis, two `arq` worker processes with their default settings."""

import asyncio
import os

from arq import create_pool
from arq.connections import RedisSettings

SETTINGS = RedisSettings.from_dsn(os.environ["PEER_REDIS"])


async def noop(ctx: dict) -> None:
    return None


class WorkerSettings:
    functions = (noop,)
    redis_settings = SETTINGS


WORKERS = [["-m", "arq", "bench.peers.arq_peer.WorkerSettings"]] * 2
_loop = asyncio.new_event_loop()


def submit(n: int) -> list:
    async def go() -> list:
        pool = await create_pool(SETTINGS)
        return [await pool.enqueue_job("noop") for _ in range(n)]

    return _loop.run_until_complete(go())


def wait(handles: list) -> None:
    async def go() -> None:
        for job in handles:
            await job.result(timeout=600, poll_delay=0.001)

    _loop.run_until_complete(go())
