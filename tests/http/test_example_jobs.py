"""The example jobs: their answers, and a 400 naming the parameter for bad ones."""

import httpx
import pytest


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
