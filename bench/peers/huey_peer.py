"""Huey: a no-op task on Redis, one consumer with 2 workers (Huey's default thread workers)."""

import os

from huey import RedisHuey

huey = RedisHuey("peer", url=os.environ["PEER_REDIS"])


@huey.task()
def noop() -> bool:
    return True  # Huey stores no result for None, and a result is what the client waits for


WORKERS = [["-m", "huey.bin.huey_consumer", "bench.peers.huey_peer.huey", "-w", "2", "-q"]]


def submit(n: int) -> list:
    return [noop() for _ in range(n)]


def wait(handles: list) -> None:
    for result in handles:
        result.get(blocking=True, timeout=600)
