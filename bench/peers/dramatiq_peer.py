"""Dramatiq: a no-op actor on Redis with the Results middleware, 2 worker processes."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

broker = RedisBroker(url=os.environ["PEER_REDIS"])
broker.add_middleware(Results(backend=RedisBackend(url=os.environ["PEER_REDIS"])))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True)
def noop() -> None:
    return None


WORKERS = [["-m", "dramatiq", "bench.peers.dramatiq_peer", "--processes", "2"]]


def submit(n: int) -> list:
    return [noop.send() for _ in range(n)]


def wait(handles: list) -> None:
    for message in handles:
        message.get_result(block=True, timeout=600_000)
