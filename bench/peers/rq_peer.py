"""RQ: a no-op job on Redis, two `rq worker` processes (RQ's default forking worker)."""

import os
import time

from redis import Redis
from rq import Queue


def noop() -> None:
    return None


URL = os.environ["PEER_REDIS"]
WORKERS = [["-m", "rq.cli", "worker", "--url", URL, "-q", "peer"]] * 2


def _queue() -> Queue:
    return Queue("peer", connection=Redis.from_url(URL))


def submit(n: int) -> list:
    queue = _queue()
    return [queue.enqueue(noop) for _ in range(n)]


def wait(handles: list) -> None:
    for job in handles:
        while job.get_status(refresh=True) != "finished":
            time.sleep(0.001)
