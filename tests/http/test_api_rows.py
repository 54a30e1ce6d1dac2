"""Rows of API.md that need a test of their own: each would fail if its rule were broken."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.http import create_app
from gearjobs.jobs import RequestIdentifier
from gearjobs.store import (
    Entry,
    JobKey,
    JobRecord,
    MemoryStore,
    SQLiteStore,
    Store,
    StoreUnavailable,
)

from .conftest import make_registry

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


def with_id(ident: RequestIdentifier, **headers: str) -> dict[str, str]:
    return {"X-Request-Id": str(ident), **headers}


async def test_pending_values_written_before_a_failure_are_never_sent(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/jobs/pending-then-fail")
    assert r.status_code == 404
    assert "X-Leaked" not in r.headers
    assert r.json() == {"message": "gone", "code": "not-found"}


async def test_a_pending_value_written_after_the_success_is_logged_and_never_sent(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    r = await client.post("/jobs/pending-after-success")
    assert r.status_code == 200 and r.json() == "sent"
    assert "X-Late" not in r.headers
    assert "pending value 'Late' written after the response" in caplog.text
    again = await client.post("/jobs/pending-after-success", headers=with_id(
        RequestIdentifier.parse(r.headers["X-Request-Id"])
    ))  # fmt: skip
    assert "X-Late" not in again.headers, "nor is it sent with a replay"


async def test_every_refusal_of_a_named_request_carries_its_request_id(
    client: httpx.AsyncClient,
) -> None:
    ident = RequestIdentifier.new()
    big = {"blob": "x" * (200 * 1024)}
    cases: list[tuple[str, object, int]] = [
        ("/jobs/sleep", {"seconds": "soon"}, 400),
        ("/jobs/no-such-job", {}, 404),
        ("/jobs/echo", big, 413),
        ("/jobs/fail", {"code": "error", "message": "boom"}, 500),
        ("/jobs/fail", {"code": "unavailable", "message": "later"}, 503),
        ("/jobs/fail", {"code": "rate-limit", "message": "slow down"}, 429),
    ]
    for path, body, status in cases:
        ident = RequestIdentifier.new()
        r = await client.post(path, json=body, headers=with_id(ident))
        assert r.status_code == status, (path, body)
        assert r.headers["X-Request-Id"] == str(ident), (path, status)
        assert "message" in r.json()
    await client.post("/jobs/echo", json={"a": 1}, headers=with_id(ident))
    mismatch = await client.post("/jobs/echo", json={"a": 2}, headers=with_id(ident))
    assert (mismatch.status_code, mismatch.headers["X-Request-Id"]) == (422, str(ident))


async def test_the_same_idempotency_key_from_two_users_is_two_jobs(
    authed: httpx.AsyncClient,
) -> None:
    key = {"Idempotency-Key": "order-7"}
    alice = await authed.post("/jobs/tally", json={"key": "k"}, headers={**ALICE, **key})
    bob = await authed.post("/jobs/tally", json={"key": "k"}, headers={**BOB, **key})
    assert alice.json()["value"] == 1 and bob.json()["value"] == 2, "two jobs ran"
    again = await authed.post("/jobs/tally", json={"key": "k"}, headers={**ALICE, **key})
    assert again.json()["value"] == 1, "alice's key still names alice's job"


async def test_the_body_limit_is_100_kib_by_default(client: httpx.AsyncClient) -> None:
    def body_of(size: int) -> bytes:
        head, tail = b'{"p": "', b'"}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    at_limit = await client.post("/jobs/echo", content=body_of(100 * 1024))
    assert at_limit.status_code == 200
    past = await client.post("/jobs/echo", content=body_of(100 * 1024 + 1))
    assert past.status_code == 413
    assert "100" in past.json()["message"] or "102400" in past.json()["message"]


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"12", b"null", b"true"])
async def test_a_json_body_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    r = await client.post("/jobs/echo", content=body)
    assert r.status_code == 400
    assert r.json()["message"] == "the body must be a JSON object of the job's parameters"


async def test_listing_by_state_gives_that_state_only_and_the_last_page_has_no_cursor(
    client: httpx.AsyncClient,
) -> None:
    failed = []
    for i in range(4):
        if i % 2:
            r = await client.post("/jobs/fail", json={"code": "not-found", "message": "m"})
            failed.append(r.headers["X-Request-Id"])
        else:
            await client.post("/jobs/echo", json={"i": i})
    listed = (await client.get("/jobs", params={"state": "failed"})).json()
    assert [job["id"] for job in listed["jobs"]] == failed[::-1]
    assert {job["state"] for job in listed["jobs"]} == {"failed"}
    assert listed["cursor"] is None
    first = (await client.get("/jobs", params={"state": "failed", "limit": 1})).json()
    assert first["cursor"] is not None
    rest = await client.get("/jobs", params={"state": "failed", "cursor": first["cursor"]})
    assert [job["id"] for job in rest.json()["jobs"]] == [failed[0]]
    assert rest.json()["cursor"] is None


async def test_the_record_of_a_failed_job_shows_the_status_of_its_answer(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/jobs/fail", json={"code": "already-exists", "message": "m"})
    record = (await client.get(f"/jobs/{r.headers['X-Request-Id']}")).json()
    assert (record["state"], record["status"]) == ("failed", 409)


async def test_a_repeat_of_a_queued_id_joins_it(
    client: httpx.AsyncClient, dispatcher: Dispatcher
) -> None:
    # Every slow worker busy: the next slow job waits in the queue, and a repeat of its id
    # must join it (one run, the same answer), neither run it again nor be refused.
    slow = dispatcher.slow
    busy = [
        asyncio.ensure_future(client.post("/jobs/sleep", json={"seconds": 0.3, "lines": 1}))
        for _ in range(slow.concurrent)
    ]
    await until(lambda: slow.running == slow.concurrent)
    ident = RequestIdentifier.new()
    body = {"seconds": 0, "lines": 2}
    stream = {"Accept": "text/plain;stream=true"}
    first = asyncio.ensure_future(
        client.post("/jobs/sleep", json=body, headers=with_id(ident, **stream))
    )
    for _ in range(100_000):  # until the claim is made (on Redis it takes a round trip)
        await asyncio.sleep(0)  # the request runs in a task of its own: let it
        seen = await client.get(f"/jobs/{ident}")
        if seen.status_code == 200:
            break
    assert seen.json()["state"] == "queued"
    joined = metric(await client.get("/metrics"), "gearjobs_jobs_joined_total")
    again = await client.post("/jobs/sleep", json=body, headers=with_id(ident, **stream))
    answer = await first
    await asyncio.gather(*busy)
    assert (
        (answer.status_code, answer.text)
        == (again.status_code, again.text)
        == (
            202,
            "tick 1\ntick 2\n",
        )
    )
    record = (await client.get(f"/jobs/{ident}")).json()
    assert record["run"] == 1
    assert metric(await client.get("/metrics"), "gearjobs_jobs_joined_total") == joined + 1


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run (no time passes) until `condition` holds."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def metric(response: httpx.Response, name: str) -> float:
    """The sum of a metric's samples in a Prometheus text answer."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line.startswith(name)
    )


async def post_twice(store: Store, accept: str) -> list[httpx.Response]:
    """POST opaque-table twice under one id, on a server over `store`."""
    dispatcher = Dispatcher(store=store)
    await dispatcher.start()
    transport = httpx.ASGITransport(app=create_app(dispatcher, make_registry()))
    headers = with_id(RequestIdentifier.new(), Accept=accept)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            async with asyncio.timeout(10):  # a guard: a repeat used to wait forever
                return [await c.post("/jobs/opaque-table", headers=headers) for _ in range(2)]
    finally:
        await dispatcher.close()
        await store.close()


async def test_data_that_renders_itself_is_a_table_where_the_store_keeps_objects() -> None:
    answers = await post_twice(MemoryStore(), "text/plain")
    assert [(a.status_code, a.text) for a in answers] == [(200, "name  size\na     1\n")] * 2
    as_json = await post_twice(MemoryStore(), "application/json")
    assert as_json[0].status_code == 406
    assert "no JSON form" in as_json[0].json()["message"]


async def test_an_answer_that_cannot_be_made_is_a_500_with_its_id_and_the_app_serves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A table whose own code raises (or any bug in making an answer): a JSON 500 that keeps
    # the request's id, logged, and no exception for the server (uvicorn closes the
    # connection of a request whose app raised).
    dispatcher = Dispatcher(store=MemoryStore())
    await dispatcher.start()
    transport = httpx.ASGITransport(app=create_app(dispatcher, make_registry()))
    ident = RequestIdentifier.new()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            started = await c.post(
                "/jobs/broken-table", headers=with_id(ident, Accept="text/plain")
            )
            joined = await c.get(f"/jobs/{ident}/output", headers={"Accept": "text/plain"})
            for r in (started, joined):
                assert r.status_code == 500, r.url
                assert r.json() == {
                    "message": "the job's answer could not be made",
                    "code": "error",
                }
                assert r.headers["x-request-id"] == str(ident)
            assert (await c.post("/jobs/echo", json={})).status_code == 200
    finally:
        await dispatcher.close()
    assert "the table's own code is broken" in caplog.text


async def test_data_that_is_not_json_fails_alike_for_everyone_where_the_store_keeps_json(
    tmp_path: Path,
) -> None:
    # The SQLite file (and Redis) hold JSON: an answer it could not record must not go out,
    # or the first client would get what no repeat could, and the repeat would wait forever.
    answers = await post_twice(SQLiteStore(tmp_path / "jobs.db"), "text/plain")
    assert [a.status_code for a in answers] == [500, 500]
    assert answers[0].content == answers[1].content
    assert "the job's data is not JSON" in answers[0].json()["message"]


class UnreachableStore(MemoryStore):
    """A memory store that cannot be read: as a Redis that is away."""

    async def get(self, key: JobKey) -> JobRecord | None:
        raise StoreUnavailable("the job store is unreachable")


class UnreadableStore(MemoryStore):
    """A memory store whose journals cannot be read once `away` is set."""

    away = False

    async def read(self, key: JobKey, offset: int = 0, limit: int = 1024) -> list[Entry]:
        if self.away:
            raise StoreUnavailable("the job store is unreachable")
        return await super().read(key, offset, limit)


async def test_a_replay_the_store_cannot_read_is_503_with_its_request_id() -> None:
    # Not a 500: the store being away is no bug, and the client should retry.
    store = UnreadableStore()
    dispatcher = Dispatcher(store=store)
    await dispatcher.start()
    transport = httpx.ASGITransport(app=create_app(dispatcher, make_registry()))
    ident = RequestIdentifier.new()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            first = await c.post("/jobs/echo", json={}, headers=with_id(ident))
            assert first.status_code == 200
            await dispatcher.recorded(JobKey("anonymous", ident))
            store.away = True
            replay = await c.post("/jobs/echo", json={}, headers=with_id(ident))
            joined = await c.get(f"/jobs/{ident}/output")
            for r in (replay, joined):
                assert r.status_code == 503, r.url
                assert r.json()["code"] == "unavailable"
                assert r.headers["retry-after"] and r.headers["x-request-id"] == str(ident)
    finally:
        await dispatcher.close()


async def test_a_look_at_a_job_the_store_cannot_answer_is_503_with_its_request_id() -> None:
    dispatcher = Dispatcher(store=UnreachableStore())
    await dispatcher.start()
    transport = httpx.ASGITransport(app=create_app(dispatcher, make_registry()))
    ident = str(RequestIdentifier.new())
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            for path in (f"/jobs/{ident}", f"/jobs/{ident}/output"):
                r = await c.get(path)
                assert r.status_code == 503, path
                assert r.headers["X-Request-Id"] == ident
                assert r.headers["Retry-After"] == "1"
                assert r.json()["message"] == "the job store is unreachable"
    finally:
        await dispatcher.close()
