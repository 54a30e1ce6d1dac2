"""Runs in the peers' environment: `python -m bench.peers.drive PEER N LATENCY_N`.

Enqueues N no-op jobs, waits for every result (jobs/s end to end), then times LATENCY_N
single jobs one after another (round trip), and prints one JSON line.
"""

import importlib
import json
import statistics
import sys
import time


def main() -> None:
    name, n, latency_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    peer = importlib.import_module(f"bench.peers.{name}_peer")
    peer.wait(peer.submit(5))  # warm up: connections, workers, imports
    start = time.perf_counter()
    peer.wait(peer.submit(n))
    rate = n / (time.perf_counter() - start)
    round_trips = []
    for _ in range(latency_n):
        one = time.perf_counter()
        peer.wait(peer.submit(1))
        round_trips.append(time.perf_counter() - one)
    print(json.dumps({"rate": rate, "p50_ms": statistics.median(round_trips) * 1000}))


if __name__ == "__main__":
    main()
