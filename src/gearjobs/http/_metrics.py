"""Prometheus metrics of one server: what was dispatched, joined, replayed, rejected, finished."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gearjobs.dispatcher import Dispatcher, JobHandle
from gearjobs.store import JobRecord

__all__ = ("CONTENT_TYPE_LATEST", "Metrics")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DURATION_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class Metrics:
    """The metrics of one server, in a registry of its own (no global state).

    It is a JobObserver of the dispatcher (jobs finished and their durations); the HTTP layer
    counts what each request did (dispatched, joined, replayed, rejected) and times dispatches.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.dispatched = Counter(
            "gearjobs_jobs_dispatched", "Jobs started by a request", ["name"], registry=r
        )
        self.joined = Counter(
            "gearjobs_jobs_joined", "Requests that joined a queued or running job", ["name"],
            registry=r,
        )  # fmt: skip
        self.replayed = Counter(
            "gearjobs_jobs_replayed", "Requests answered from a finished job's record", ["name"],
            registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "gearjobs_jobs_rejected", "Requests refused, by reason (a failure code)", ["reason"],
            registry=r,
        )  # fmt: skip
        self.finished = Counter(
            "gearjobs_jobs_finished", "Jobs whose answer was recorded, by outcome",
            ["name", "outcome"], registry=r,
        )  # fmt: skip
        self.dispatch_latency = Histogram(
            "gearjobs_dispatch_seconds", "Time to dispatch a request (claim, queue or join)",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "gearjobs_job_duration_seconds", "Time from a job's start to its recorded end",
            ["name"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        running = Gauge("gearjobs_jobs_running", "Jobs running", ["queue"], registry=r)
        queued = Gauge("gearjobs_jobs_queued", "Jobs waiting in a queue", ["queue"], registry=r)
        for queue in (dispatcher.fast, dispatcher.slow):
            running.labels(queue.name).set_function(functools.partial(getattr, queue, "running"))
            queued.labels(queue.name).set_function(functools.partial(getattr, queue, "waiting"))

        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once per label set (it takes a lock)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def counted(self, handle: JobHandle, name: str) -> None:
        """Count what a dispatch did."""
        if not handle.joined:
            self._child(self.dispatched, name).inc()
        elif handle.record.state.finished:
            self._child(self.replayed, name).inc()
        else:
            self._child(self.joined, name).inc()

    def rejected_for(self, reason: str) -> None:
        """Count a refused request."""
        self._child(self.rejected, reason).inc()

    def job_started(self, record: JobRecord, detail: Mapping[str, Any] | None) -> None:
        pass

    def job_finished(self, record: JobRecord, detail: Mapping[str, Any] | None) -> None:
        outcome = record.state.value
        if record.failure is not None:
            outcome = f"{outcome}:{record.failure.value}"
        self._child(self.finished, record.name, outcome).inc()
        if record.started_at is not None and record.finished_at is not None:
            self._child(self.duration, record.name).observe(
                max(0.0, record.finished_at - record.started_at)
            )

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
