"""Pending values that would inject or break headers are refused as a job error, never sent."""

import httpx
import pytest


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Evil", "a\r\nSet-Cookie: x=1"),
        ("Evil", "line\nbreak"),
        ("Evil", "caf\u00e9"),
        ("Evil", "\x00"),
        ("Bad Name", "v"),
        ("Bad\r\nName", "v"),
        ("Nön", "v"),
        ("", "v"),
        ("Long", "x" * 5000),
    ],
)
async def test_unsafe_pending_values_fail_the_job_and_send_nothing(
    client: httpx.AsyncClient, name: str, value: str
) -> None:
    r = await client.post("/jobs/pending", json={"name": name, "value": value})
    assert r.status_code == 500
    assert r.json()["code"] == "error"
    assert "pending value" in r.json()["message"]
    assert not any(h.lower().startswith("x-evil") or "cookie" in h.lower() for h in r.headers)


async def test_safe_pending_values_are_sent(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs/pending", json={"name": "Total-Count", "value": {"a": [1, "é"]}})
    assert r.status_code == 200
    assert r.headers["X-Total-Count"] == '{"a": [1, "\\u00e9"]}'
