"""Prometheus metrics of one server: what was dispatched, joined, replayed, rejected, finished."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gearjobs.dispatcher import Dispatcher, JobHandle
from gearjobs.store import JobRecord

__all__ = ("CONTENT_TYPE_LATEST", "Metrics")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DURATION_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class _Counter(Collector):
    """A counter family kept as plain numbers, turned into Prometheus samples on collection.

    prometheus_client's own counters take a lock on every increment; counting a handful of
    things per request that way cost more than the rest of the metrics' work together. Every
    update runs on the event loop's thread, and so does collection (the /metrics endpoint).
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.values: dict[tuple[str, ...], int] = {}

    def inc(self, *labels: str) -> None:
        values = self.values
        count = values.get(labels)
        if count is None:
            _check_labels(self.name, self.labelnames, labels)
            count = 0
        values[labels] = count + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        yield family


class _Histogram(Collector):
    """A histogram family kept as bucket counts, turned into Prometheus samples on collection."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...],
        buckets: tuple[float, ...],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.bounds = buckets
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        if not labelnames:  # shown, with zeros, before anything is observed
            self.series[()] = self._empty()

    def observe(self, value: float, *labels: str) -> None:
        series = self.series.get(labels)
        if series is None:
            _check_labels(self.name, self.labelnames, labels)
            series = self.series[labels] = self._empty()
        counts, total = series
        counts[bisect.bisect_left(self.bounds, value)] += 1  # a bucket counts values <= its bound
        total[0] += value

    def _empty(self) -> tuple[list[int], list[float]]:
        """Counts for each bucket and one past the last bound, and the sum of the values."""
        return [0] * (len(self.bounds) + 1), [0.0]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, (counts, total) in self.series.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip(
                (*map(floatToGoString, self.bounds), "+Inf"), counts, strict=True
            ):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(labels, buckets, total[0])
        yield family


def _check_labels(name: str, labelnames: tuple[str, ...], labels: tuple[str, ...]) -> None:
    if len(labels) != len(labelnames):
        raise ValueError(f"{name} takes the labels {labelnames}, not {labels}")


class Metrics:
    """The metrics of one server, in a registry of its own (no global state).

    It is a JobObserver of the dispatcher (jobs finished and their durations); the HTTP layer
    counts what each request did (dispatched, joined, replayed, rejected) and times dispatches.
    All counting happens on the event loop's thread.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.dispatched = _Counter(
            "gearjobs_jobs_dispatched", "Jobs started by a request", ("name",)
        )
        self.joined = _Counter(
            "gearjobs_jobs_joined", "Requests that joined a queued or running job", ("name",)
        )
        self.replayed = _Counter(
            "gearjobs_jobs_replayed", "Requests answered from a finished job's record", ("name",)
        )
        self.rejected = _Counter(
            "gearjobs_jobs_rejected", "Requests refused, by reason (a failure code)", ("reason",)
        )
        self.finished = _Counter(
            "gearjobs_jobs_finished", "Jobs whose answer was recorded, by outcome",
            ("name", "outcome"),
        )  # fmt: skip
        self.dispatch_latency = _Histogram(
            "gearjobs_dispatch_seconds", "Time to dispatch a request (claim, queue or join)",
            (), LATENCY_BUCKETS,
        )  # fmt: skip
        self.duration = _Histogram(
            "gearjobs_job_duration_seconds", "Time from a job's start to its recorded end",
            ("name",), DURATION_BUCKETS,
        )  # fmt: skip
        for collector in (
            self.dispatched,
            self.joined,
            self.replayed,
            self.rejected,
            self.finished,
            self.dispatch_latency,
            self.duration,
        ):
            r.register(collector)
        running = Gauge("gearjobs_jobs_running", "Jobs running", ["queue"], registry=r)
        queued = Gauge("gearjobs_jobs_queued", "Jobs waiting in a queue", ["queue"], registry=r)
        for queue in (dispatcher.fast, dispatcher.slow):
            running.labels(queue.name).set_function(functools.partial(getattr, queue, "running"))
            queued.labels(queue.name).set_function(functools.partial(getattr, queue, "waiting"))

    def counted(self, handle: JobHandle, name: str) -> None:
        """Count what a dispatch did."""
        if not handle.joined:
            self.dispatched.inc(name)
        elif handle.record.state.finished:
            self.replayed.inc(name)
        else:
            self.joined.inc(name)

    def rejected_for(self, reason: str) -> None:
        """Count a refused request."""
        self.rejected.inc(reason)

    def job_started(self, record: JobRecord, detail: Mapping[str, Any] | None) -> None:
        pass

    def job_finished(self, record: JobRecord, detail: Mapping[str, Any] | None) -> None:
        outcome = record.state._value_
        if record.failure is not None:
            outcome = f"{outcome}:{record.failure._value_}"
        self.finished.inc(record.name, outcome)
        if record.started_at is not None and record.finished_at is not None:
            self.duration.observe(max(0.0, record.finished_at - record.started_at), record.name)

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
