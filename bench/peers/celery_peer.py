"""Celery: a no-op task on Redis (broker and results), worker prefork with concurrency 2."""

import os

from celery import Celery

app = Celery("peer", broker=os.environ["PEER_REDIS"], backend=os.environ["PEER_REDIS"])


@app.task
def noop() -> None:
    return None


WORKERS = [["-m", "celery", "-A", "bench.peers.celery_peer", "worker", "--concurrency", "2",
            "--loglevel", "WARNING"]]  # fmt: skip


def submit(n: int) -> list:
    return [noop.delay() for _ in range(n)]


def wait(handles: list) -> None:
    for handle in handles:
        handle.get(timeout=600)
