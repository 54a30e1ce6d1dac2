"""What the Redis store adds: several processes (here, several store objects) on one Redis."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from gearjobs.jobs import GearjobsError, RequestIdentifier, ResponseFailure, ResponseSuccess
from gearjobs.store import (
    ENDED,
    Body,
    Chunk,
    ClaimResult,
    Entry,
    Failed,
    JobKey,
    JobRecord,
    JobState,
    NameTaken,
    RedisStore,
    StoreUnavailable,
    Succeeded,
    WriteRefused,
    redacted,
    store_from_url,
)

from ..redis_server import RedisServer
from ..servers import free_port


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    prefix = f"n{uuid.uuid4().hex[:12]}"
    a = RedisStore(redis_server.url, prefix=prefix, lease=0.6, block=0.2)
    b = RedisStore(redis_server.url, prefix=prefix, lease=0.6, block=0.2)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def job(node: str) -> JobRecord:
    return JobRecord(JobKey("u", RequestIdentifier.new()), "count", "fp", node=node, created_at=1)


async def test_one_node_wins_a_claim_and_the_other_follows_its_journal_live(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, b = nodes
    mine = job("a")
    rival = JobRecord(mine.key, "count", "fp", node="b")
    claims = await asyncio.gather(a.claim(mine), b.claim(rival))
    assert sorted(c.claimed for c in claims) == [False, True]
    # Whichever node won runs the job; the other follows it.
    runner, rec, other = (a, mine, b) if claims[0].claimed else (b, rival, a)
    follower = asyncio.create_task(_collect(other, rec.key))
    head: list[Entry] = [Succeeded(ResponseSuccess.OK, Body.TEXT, {}), Chunk(b"1\n")]
    await runner.append(rec.key, head)
    rec.state = JobState.SUCCEEDED
    rec.finished_at = 2.0
    await runner.finish(rec, [Chunk(b"2\n"), ENDED])
    assert await asyncio.wait_for(follower, 10) == [*head, Chunk(b"2\n"), ENDED]


async def _collect(store: RedisStore, key: JobKey) -> list[Entry]:
    return [e async for e in store.follow(key)]


async def test_a_node_that_stops_renewing_loses_its_jobs_to_the_reaper(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, b = nodes
    rec = job("a")
    assert (await a.claim(rec)).claimed
    await a.append(rec.key, [Succeeded(ResponseSuccess.OK, Body.TEXT, {}), Chunk(b"partial")])
    follower = asyncio.create_task(_collect(b, rec.key))
    # Node a dies: its lease upkeep stops and nothing finishes its job.
    await a.close()
    entries = await asyncio.wait_for(follower, 10)
    last = entries[-1]
    assert isinstance(last, Failed)
    assert (last.failure, last.data) == (ResponseFailure.UNAVAILABLE, {"state": "lost"})
    record = await b.get(rec.key)
    assert record is not None and record.state is JobState.LOST
    retry = JobRecord(rec.key, "count", "fp", node="b")
    assert (await b.claim(retry)).claimed
    assert retry.run == 2


async def test_a_live_nodes_leases_are_renewed(nodes: tuple[RedisStore, RedisStore]) -> None:
    a, b = nodes
    rec = job("a")
    await a.claim(rec)
    for _ in range(3):
        await a.renew()
        assert await b.reap() == 0
    record = await b.get(rec.key)
    assert record is not None and record.state is JobState.QUEUED


async def test_a_stale_node_cannot_write_over_a_later_run(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, b = nodes
    rec = job("a")
    await a.claim(rec)
    await b.recover("a", 5.0)  # node a is declared restarted: its job is lost
    newer = JobRecord(rec.key, "count", "fp", node="b")
    await b.claim(newer)
    rec.state = JobState.SUCCEEDED
    rec.finished_at = 6.0
    with pytest.raises(WriteRefused, match="marked lost, or claimed again"):
        await a.finish(rec, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, "stale")])
    record = await b.get(rec.key)
    assert record is not None and record.run == 2 and record.node == "b"
    assert await b.read(rec.key) == []


async def test_a_late_update_or_append_does_not_change_a_finished_job(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    """A call whose reply never came (Redis hung) may run after the job's end was written:
    it must neither make the job running again nor add to its journal."""
    a, b = nodes
    rec = job("a")
    await a.claim(rec)
    late = rec.copy()
    late.state = JobState.RUNNING
    late.started_at = 2.0
    rec.state = JobState.SUCCEEDED
    rec.finished_at = 3.0
    answer: list[Entry] = [Succeeded(ResponseSuccess.OK, Body.DATA, {}, "done")]
    await a.finish(rec, answer, start=0)
    await a.update(late)
    with pytest.raises(WriteRefused):
        await a.append(rec.key, [Chunk(b"late")], start=0)
    record = await b.get(rec.key)
    assert record is not None and record.state is JobState.SUCCEEDED
    assert await b.read(rec.key) == answer


async def test_an_unreachable_redis_is_store_unavailable() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable, match="unreachable"):
        await store.claim(job("a"))
    with pytest.raises(StoreUnavailable):
        await store.ping()
    await store.close()


def test_redis_urls_carry_the_lease_and_prefix() -> None:
    store = store_from_url("redis://127.0.0.1:6379/2?lease=2.5&prefix=app", retention=60)
    assert isinstance(store, RedisStore)
    assert (store.url, store.lease, store.prefix, store.retention, store.reply_timeout) == (
        "redis://127.0.0.1:6379/2",
        2.5,
        "app",
        60,
        5.0,
    )


def test_redis_urls_carry_the_reply_timeout_of_the_script_connection() -> None:
    store = store_from_url("redis://127.0.0.1:6379/0?reply_timeout=30")
    assert isinstance(store, RedisStore) and store.reply_timeout == 30.0
    assert store._scripts is not None and store._scripts.reply_timeout == 30.0
    for bad in ("x", "0", "-1", "inf", "nan"):
        with pytest.raises(GearjobsError, match="reply_timeout"):
            store_from_url(f"redis://127.0.0.1:6379/0?reply_timeout={bad}")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("leese=10", "unknown parameter 'leese'"),  # was taken, and the lease left at 10 s
        ("lease=5&prefx=app", "unknown parameter 'prefx'"),  # two deployments shared keys
        ("prefix=a&prefix=b", "prefix is given more than once"),
        ("prefix=", "prefix must not be empty"),
    ],
)
def test_redis_urls_refuse_unknown_repeated_and_empty_parameters(query: str, message: str) -> None:
    with pytest.raises(GearjobsError, match=message):
        store_from_url(f"redis://127.0.0.1:6379/0?{query}")


async def test_claims_from_one_loop_turn_share_a_pipeline_and_each_gets_its_own_answer(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, _ = nodes
    records = [job("a") for _ in range(20)]
    taken = records[0]
    assert (await a.claim(taken)).claimed
    again = JobRecord(taken.key, "count", "fp", node="a", created_at=1)
    results = await asyncio.gather(*(a.claim(r) for r in [*records[1:], again]))
    assert [r.claimed for r in results] == [True] * 19 + [False]
    assert results[-1].existing is not None and results[-1].existing.key == taken.key


async def test_scripts_the_server_forgot_are_loaded_again(
    nodes: tuple[RedisStore, RedisStore], redis_server: RedisServer
) -> None:
    a, _ = nodes
    assert (await a.claim(job("a"))).claimed
    await a._redis.script_flush()  # as after a restart of Redis
    record = job("a")
    assert (await a.claim(record)).claimed
    record.state = JobState.SUCCEEDED
    await a.finish(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
    stored = await a.get(record.key)
    assert stored is not None and stored.state is JobState.SUCCEEDED


async def test_a_failed_script_reload_fails_only_the_calls_that_did_not_run(
    nodes: tuple[RedisStore, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from gearjobs.store._redis import CLAIM

    a, _ = nodes
    running = job("a")
    assert (await a.claim(running)).claimed
    await a._redis.script_flush()  # Redis forgot every script...
    await a._redis.script_load(CLAIM)  # ...but the claim script is back

    async def unreachable(script: str) -> str:
        raise RedisConnectionError("connection lost while loading a script")

    monkeypatch.setattr(a._redis, "script_load", unreachable)
    fresh = job("a")
    running.state = JobState.SUCCEEDED
    claimed, finished = await asyncio.gather(  # one pipeline: CLAIM runs, FINISH is missing
        a.claim(fresh),
        a.finish(running, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)]),
        return_exceptions=True,
    )
    assert isinstance(claimed, ClaimResult) and claimed.claimed, "the claim that ran is won"
    assert isinstance(finished, StoreUnavailable)


def test_a_password_in_the_url_is_never_shown() -> None:
    assert redacted("redis://app:s3cret@127.0.0.1:6379/0") == "redis://app:***@127.0.0.1:6379/0"
    assert redacted("rediss://:s3cret@10.0.0.1:6380/1") == "rediss://:***@10.0.0.1:6380/1"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redacted("sqlite:///jobs.db") == "sqlite:///jobs.db"
    store = store_from_url("redis://app:s3cret@127.0.0.1:6379/0")
    assert "s3cret" not in repr(store)
    with pytest.raises(GearjobsError) as caught:
        store_from_url("redis://app:s3cret@127.0.0.1:6379/0?lease=x")
    assert "lease" in str(caught.value) and "s3cret" not in str(caught.value)


async def test_an_unreachable_redis_says_so_without_its_password() -> None:
    """The 503 a client gets names the store; the password stays with the server."""
    store = RedisStore(f"redis://app:s3cret@127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.ping()
    finally:
        await store.close()
    assert "unreachable" in caught.value.message
    assert "s3cret" not in caught.value.message and "app:***@" in caught.value.message


def test_check_ready_pings_redis(redis_server: RedisServer) -> None:
    RedisStore(redis_server.url).check_ready()  # answers: no error
    away = RedisStore(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    with pytest.raises(GearjobsError, match="cannot reach the Redis store") as caught:
        away.check_ready()
    assert "s3cret" not in str(caught.value)


async def test_a_node_name_a_live_store_holds_is_refused_to_another_until_it_lets_go(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    """Two processes under one name would mark each other's running jobs lost at start."""
    a, b = nodes
    await a.take_name("twin")
    # b waits longer than the name's time to live (0.6 s) before it refuses: a is renewing it.
    with pytest.raises(NameTaken, match=r"serves as node 'twin'.*own --node"):
        await b.take_name("twin")
    await b.take_name("other")  # names are one process each, not one store each
    await a.release_name("twin")
    assert not await a._redis.exists(f"{a.prefix}:node:twin")  # a clean stop frees it at once
    await b.take_name("twin")


async def test_a_node_name_left_by_a_process_that_died_is_taken_once_it_expires(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, _ = nodes
    key = f"{a.prefix}:node:crashed"
    await a._redis.set(key, "token-of-a-killed-process", px=400)  # as `kill -9` leaves it
    await a.take_name("crashed")
    assert (await a._redis.get(key)).decode() != "token-of-a-killed-process"


async def test_check_ready_takes_the_name_for_the_store_and_refuses_a_live_holders(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, b = nodes
    await a.take_name("busy")
    with pytest.raises(NameTaken, match="serves as node 'busy'"):
        await asyncio.to_thread(b.check_ready, "busy")
    await asyncio.to_thread(b.check_ready, "free")  # taken with b's own token...
    await b.take_name("free")  # ...which b's start then renews
    with pytest.raises(NameTaken):
        await a.take_name("free")
