"""The example jobs: their answers, and a 400 naming the parameter for bad ones."""

import httpx
import pytest

from gearjobs.examples import example_jobs
from gearjobs.jobs import ANONYMOUS, JobContext, JobRequest, RequestIdentifier, is_fast


@pytest.mark.parametrize(
    ("name", "params", "parameter"),
    [
        ("sleep", {"seconds": -1}, "seconds"),
        ("sleep", {"seconds": 301}, "seconds"),
        ("sleep", {"seconds": "1"}, "seconds"),
        ("sleep", {"lines": 0}, "lines"),
        ("sleep", {"lines": 10001}, "lines"),
        ("sleep", {"lines": 1.5}, "lines"),
        ("sleep", {"bogus": 1}, "bogus"),
        ("count", {"to": 0}, "to"),
        ("count", {"to": 100001}, "to"),
        ("count", {"to": True}, "to"),
        ("count", {"delay": 11}, "delay"),
        ("count", {"delay": -0.1}, "delay"),
        ("fail", {}, "code"),
        ("fail", {"code": "nonsense"}, "code"),
        ("fail", {"code": "error", "message": 5}, "message"),
        ("tally", {}, "key"),
        ("tally", {"key": 5}, "key"),
        ("tally", {"key": "k", "peek": "yes"}, "peek"),
        # A null is a value, not the default (which is had by leaving the parameter out).
        ("sleep", {"seconds": None}, "seconds"),
        ("count", {"to": None}, "to"),
        ("fail", {"code": "error", "message": None}, "message"),
        ("tally", {"key": "k", "peek": None}, "peek"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    client: httpx.AsyncClient, name: str, params: dict[str, object], parameter: str
) -> None:
    r = await client.post(f"/jobs/{name}", json=params)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid-request"
    assert f"'{parameter}'" in body["message"]
    assert body["data"] == {"parameter": parameter}


async def test_echo_returns_its_parameters(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/echo", json={"a": [1, {"b": None}]})
    assert r.json() == {"echo": {"a": [1, {"b": None}]}}


async def test_count_defaults_to_ten_events(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/jobs/count", json={"delay": 0}, headers={"Accept": "application/x-ndjson"}
    )
    assert len(r.text.splitlines()) == 10


async def test_tally_counts_and_peeks(client: httpx.AsyncClient) -> None:
    for expected in (1, 2):
        r = await client.post("/jobs/tally", json={"key": "t"})
        assert r.json() == {"key": "t", "value": expected, "node": "test-node"}
    peek = await client.post("/jobs/tally", json={"key": "t", "peek": True})
    assert peek.json()["value"] == 2


@pytest.mark.parametrize(
    ("name", "fast", "defaults"),
    [
        ("echo", True, {}),
        ("sleep", False, {"seconds": 1, "lines": 1}),
        ("count", False, {"to": 10, "delay": 0.1}),
        ("fail", True, {}),
        ("tally", True, {}),
    ],
)
def test_each_example_is_fast_or_slow_and_has_the_documented_defaults(
    name: str, fast: bool, defaults: dict[str, float]
) -> None:
    params = {"code": "error"} if name == "fail" else {"key": "k"} if name == "tally" else {}
    context = JobContext(RequestIdentifier.new(), ANONYMOUS)
    job = example_jobs(node="n").job_for(JobRequest(name, params, context))
    assert is_fast(job) is fast
    assert {attr: getattr(job, attr) for attr in defaults} == defaults
