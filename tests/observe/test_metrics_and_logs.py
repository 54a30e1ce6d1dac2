"""GET /metrics after known traffic, and the job log lines (text and JSON)."""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gearjobs.dispatcher import Dispatcher, JobLog, JsonLogFormatter
from gearjobs.http import create_app
from gearjobs.http._metrics import Metrics
from gearjobs.jobs import RequestIdentifier
from gearjobs.store import JobKey, MemoryStore

from ..http.conftest import make_registry
from ..servers import ServerProcess


@pytest.fixture
async def server() -> AsyncIterator[tuple[Dispatcher, httpx.AsyncClient]]:
    d = Dispatcher(store=MemoryStore(), concurrent=1, queue_fast=1, queue_slow=1)
    await d.start()
    app = create_app(d, make_registry())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as client:
        yield d, client
    await d.close(timeout=0.1)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_count_known_traffic(server: tuple[Dispatcher, httpx.AsyncClient]) -> None:
    dispatcher, client = server
    ident = str(RequestIdentifier.new())
    for _ in range(3):  # one dispatch, then two replays
        await client.post("/jobs/echo", json={"a": 1}, headers={"X-Request-Id": ident})
    failed = str(RequestIdentifier.new())
    await client.post("/jobs/fail", json={"code": "not-found"}, headers={"X-Request-Id": failed})
    await client.post("/jobs/echo", json={"a": 2}, headers={"X-Request-Id": ident})  # mismatch
    await client.post("/jobs/nope")
    await client.post("/jobs/echo", content=b"[1]")
    for key in (ident, failed):
        await dispatcher.recorded(JobKey("anonymous", RequestIdentifier.parse(key)))
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    s = samples(r.text)
    assert s[("gearjobs_jobs_dispatched_total", (("name", "echo"),))] == 1
    assert s[("gearjobs_jobs_replayed_total", (("name", "echo"),))] == 2
    assert s[("gearjobs_jobs_dispatched_total", (("name", "fail"),))] == 1
    assert s[("gearjobs_jobs_rejected_total", (("reason", "request-mismatch"),))] == 1
    assert s[("gearjobs_jobs_rejected_total", (("reason", "unknown-job"),))] == 1
    assert s[("gearjobs_jobs_rejected_total", (("reason", "invalid-request"),))] == 1
    assert s[("gearjobs_jobs_finished_total", (("name", "echo"), ("outcome", "succeeded")))] == 1
    assert (
        s[("gearjobs_jobs_finished_total", (("name", "fail"), ("outcome", "failed:not-found")))]
        == 1
    )
    assert s[("gearjobs_dispatch_seconds_count", ())] == 4
    assert s[("gearjobs_job_duration_seconds_count", (("name", "echo"),))] == 1
    assert s[("gearjobs_jobs_running", (("queue", "fast"),))] == 0
    assert s[("gearjobs_jobs_queued", (("queue", "slow"),))] == 0


async def test_joins_and_rate_limits_are_counted(
    server: tuple[Dispatcher, httpx.AsyncClient],
) -> None:
    dispatcher, client = server
    ident = str(RequestIdentifier.new())
    body = {"seconds": 30, "lines": 1}
    first = await client.post("/jobs/sleep", json=body, headers={"X-Request-Id": ident})
    assert first.status_code == 204
    joined = await client.post("/jobs/sleep", json=body, headers={"X-Request-Id": ident})
    assert joined.status_code == 204
    # The next one waits in the slow queue (of 1), and its answer with it.
    waiting = asyncio.create_task(client.post("/jobs/sleep", json=body))
    for _ in range(10_000):  # until the request reached the dispatcher (a few loop turns)
        if dispatcher.slow.waiting:
            break
        await asyncio.sleep(0)
    full = await client.post("/jobs/sleep", json=body)
    assert full.status_code == 429
    waiting.cancel()
    s = samples((await client.get("/metrics")).text)
    assert s[("gearjobs_jobs_joined_total", (("name", "sleep"),))] == 1
    assert s[("gearjobs_jobs_rejected_total", (("reason", "rate-limit"),))] == 1
    assert s[("gearjobs_jobs_running", (("queue", "slow"),))] == 1


def test_job_log_lines_carry_id_user_name_outcome_and_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gearjobs.store import JobRecord, JobState

    record = JobRecord(JobKey("alice", RequestIdentifier.new()), "echo", "fp", created_at=1.0)
    record.started_at = 2.0
    log = JobLog()
    with caplog.at_level(logging.INFO, logger="gearjobs.jobs"):
        log.job_started(record, {"password": "hunter2"})
        record.state = JobState.SUCCEEDED
        record.finished_at = 2.5
        log.job_finished(record, {"password": "hunter2"})
    start, end = caplog.records
    assert f"job start {record.key.id} user=alice name=echo" == start.getMessage()
    assert end.getMessage().endswith("outcome=succeeded duration=0.500s")
    assert "hunter2" not in caplog.text
    line = json.loads(JsonLogFormatter().format(end))
    assert (line["event"], line["id"], line["user"], line["name"]) == (
        "end",
        str(record.key.id),
        "alice",
        "echo",
    )
    assert (line["outcome"], line["duration"]) == ("succeeded", 0.5)
    assert "params" not in line
    with caplog.at_level(logging.INFO, logger="gearjobs.jobs"):
        JobLog(with_detail=True).job_started(record, {"password": "hunter2"})
    assert json.loads(JsonLogFormatter().format(caplog.records[-1]))["params"] == {
        "password": "hunter2"
    }


def test_serve_writes_json_job_lines_without_params_unless_asked(tmp_path: Path) -> None:
    for flag, shown in (("--no-log-params", False), ("--log-params", True)):
        with ServerProcess(
            "--examples", "--store", "memory://", "--log-format", "json", flag,
            "--log-level", "info", cwd=tmp_path, log_dir=tmp_path / flag.strip("-"),
        ) as s:  # fmt: skip
            ident = str(RequestIdentifier.new())
            httpx.post(
                f"{s.url}/jobs/echo", json={"secret": "s3cr3t"}, headers={"X-Request-Id": ident}
            )
            lines = []
            for _ in range(100):
                lines = [json.loads(x) for x in s.output().splitlines() if x.startswith("{")]
                if any(x.get("event") == "end" and x.get("id") == ident for x in lines):
                    break
                time.sleep(0.05)  # the log is written by another process
            ours = [x for x in lines if x.get("id") == ident]
            assert [x["event"] for x in ours] == ["start", "end"]
            assert ours[1]["outcome"] == "succeeded" and ours[1]["duration"] >= 0
            assert ("s3cr3t" in s.output()) is shown


def test_histograms_count_each_value_in_the_first_bucket_that_holds_it() -> None:
    """Buckets are cumulative and `le` (a value equal to a bound counts in that bucket)."""
    metrics = Metrics(Dispatcher(store=MemoryStore()))
    for value in (0.0005, 0.0006, 0.001, 3.0):
        metrics.dispatch_latency.observe(value)
    metrics.duration.observe(0.5, "echo")
    s = samples(metrics.exposition().decode())
    bucket = "gearjobs_dispatch_seconds_bucket"
    assert s[(bucket, (("le", "0.0005"),))] == 1
    assert s[(bucket, (("le", "0.001"),))] == 3
    assert s[(bucket, (("le", "2.5"),))] == 3
    assert s[(bucket, (("le", "+Inf"),))] == 4
    assert s[("gearjobs_dispatch_seconds_count", ())] == 4
    assert s[("gearjobs_dispatch_seconds_sum", ())] == pytest.approx(3.0021)
    duration = "gearjobs_job_duration_seconds_bucket"
    assert s[(duration, (("le", "0.1"), ("name", "echo")))] == 0
    assert s[(duration, (("le", "0.5"), ("name", "echo")))] == 1


def test_the_dispatch_histogram_is_shown_before_anything_was_observed() -> None:
    s = samples(Metrics(Dispatcher(store=MemoryStore())).exposition().decode())
    assert s[("gearjobs_dispatch_seconds_count", ())] == 0
    assert s[("gearjobs_dispatch_seconds_bucket", (("le", "+Inf"),))] == 0


def test_a_count_with_the_wrong_labels_is_refused() -> None:
    metrics = Metrics(Dispatcher(store=MemoryStore()))
    with pytest.raises(ValueError, match="takes the labels"):
        metrics.finished.inc("echo")
    with pytest.raises(ValueError, match="takes the labels"):
        metrics.duration.observe(1.0)
