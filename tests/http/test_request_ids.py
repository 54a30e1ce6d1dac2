"""API.md, "Request identifier": the headers that name a request, and ids in paths."""

import httpx
import pytest

from gearjobs.jobs import RequestIdentifier

MESSAGE = "Request ID must be 22 base64 characters or 32 hexadecimal characters."


async def test_each_accepted_form_names_the_same_job(client: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    answers = []
    for form in (str(ident), ident.exact(), ident.hex()):
        r = await client.post("/jobs/tally", json={"key": "forms"}, headers={"X-Request-Id": form})
        assert r.status_code == 200
        assert r.headers["X-Request-Id"] == str(ident)
        answers.append(r.json())
    assert answers == [{"key": "forms", "value": 1, "node": "test-node"}] * 3


@pytest.mark.parametrize("bad", ["short", "g" * 32, "A" * 23, "AAAAAAAAAAAAAAAAAAAAA+", "é" * 22])
async def test_a_malformed_request_id_is_400_with_the_reference_message(
    client: httpx.AsyncClient, bad: str
) -> None:
    r = await client.post("/jobs/echo", json={}, headers={b"X-Request-Id": bad.encode()})
    assert r.status_code == 400
    assert r.json() == {"message": MESSAGE, "code": "invalid-request"}


async def test_an_idempotency_key_maps_to_one_id_per_user(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-1234"}
    first = await client.post("/jobs/tally", json={"key": "idem"}, headers=headers)
    second = await client.post("/jobs/tally", json={"key": "idem"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Request-Id"] == second.headers["X-Request-Id"]
    assert first.json() == second.json() == {"key": "idem", "value": 1, "node": "test-node"}


@pytest.mark.parametrize("bad", ["", "x" * 256, "has space", "tab\there", "naïve"])
async def test_a_malformed_idempotency_key_is_400(client: httpx.AsyncClient, bad: str) -> None:
    r = await client.post("/jobs/echo", json={}, headers={b"Idempotency-Key": bad.encode()})
    assert r.status_code == 400
    assert "Idempotency-Key must be 1 to 255 visible ASCII characters" in r.json()["message"]


async def test_an_idempotency_key_of_255_visible_characters_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/jobs/echo", json={}, headers={"Idempotency-Key": "~" * 255})
    assert r.status_code == 200


async def test_without_either_header_the_server_makes_a_new_id(client: httpx.AsyncClient) -> None:
    first = await client.post("/jobs/tally", json={"key": "fresh"})
    second = await client.post("/jobs/tally", json={"key": "fresh"})
    ids = {first.headers["X-Request-Id"], second.headers["X-Request-Id"]}
    assert len(ids) == 2
    assert all(len(i) == 22 for i in ids)
    assert second.json()["value"] == 2


async def test_both_headers_at_once_are_ambiguous(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/jobs/echo",
        json={},
        headers={"X-Request-Id": str(RequestIdentifier.new()), "Idempotency-Key": "k"},
    )
    assert r.status_code == 400
    assert "not both" in r.json()["message"]


async def test_one_id_header_twice_with_different_values_is_ambiguous(
    client: httpx.AsyncClient,
) -> None:
    one, other = str(RequestIdentifier.new()), str(RequestIdentifier.new())
    for name, first, second in (("X-Request-Id", one, other), ("Idempotency-Key", "a", "b")):
        r = await client.post(
            "/jobs/tally", json={"key": "twice"}, headers=[(name, first), (name, second)]
        )
        assert r.status_code == 400, name
        assert r.json()["message"] == f"{name} came more than once, with different values"
    same = await client.post(
        "/jobs/tally", json={"key": "twice"}, headers=[("X-Request-Id", one), ("x-request-id", one)]
    )
    assert same.status_code == 200 and same.headers["X-Request-Id"] == one
    forms = [("X-Request-Id", one), ("X-Request-Id", RequestIdentifier.parse(one).hex())]
    two_forms = await client.post("/jobs/tally", json={"key": "twice"}, headers=forms)
    assert two_forms.status_code == 200  # one id in two of its forms: a repeat
    assert two_forms.json() == same.json()
    peek = await client.post("/jobs/tally", json={"key": "twice", "peek": True})
    assert peek.json()["value"] == 1  # the refused ones ran nothing


async def test_ids_in_paths_accept_the_three_forms(client: httpx.AsyncClient) -> None:
    ident = RequestIdentifier.new()
    await client.post("/jobs/echo", json={"a": 1}, headers={"X-Request-Id": str(ident)})
    for form in (str(ident), ident.exact(), ident.hex()):
        r = await client.get(f"/jobs/{form}")
        assert r.status_code == 200
        assert r.json()["id"] == str(ident)
        assert r.headers["X-Request-Id"] == str(ident)
    r = await client.get("/jobs/not-an-id")
    assert r.status_code == 400
    assert r.json()["message"] == MESSAGE


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("GET", "/jobs", {}, None, 200),
        ("GET", "/jobs?limit=abc", {}, None, 400),
        ("GET", "/jobs?state=bogus", {}, None, 400),
        ("GET", "/jobs?cursor=zz", {}, None, 400),
        ("POST", "/jobs/echo", {"X-Request-Id": "0" * 32, "Idempotency-Key": "k"}, b"{}", 400),
        ("POST", "/jobs/echo", {"Idempotency-Key": "\x01"}, b"{}", 400),
        ("POST", "/jobs/echo", {"X-Request-Id": "bad"}, b"{}", 400),
        ("POST", "/jobs/no-such-job", {}, b"{}", 404),
        ("POST", "/jobs/echo", {}, b"[1]", 400),
        ("POST", "/jobs/echo", {"Accept": "image/png"}, b"{}", 406),
        ("GET", "/jobs/bad", {}, None, 400),
        ("GET", "/jobs/bad/output", {}, None, 400),
        ("DELETE", "/jobs/echo", {}, None, 405),
    ],
)
async def test_every_answer_of_a_jobs_route_carries_a_request_id(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
) -> None:
    """API.md: "Every response of a `/jobs…` route carries `X-Request-Id` (the 22-character
    form)"; one that names no job (a listing, a refusal before the id was read) a new one."""
    r = await client.request(method, path, headers=headers, content=body)
    assert r.status_code == status
    carried = r.headers.get("X-Request-Id")
    assert carried is not None and str(RequestIdentifier.parse(carried)) == carried
