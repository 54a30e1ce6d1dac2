"""The store interface, checked the same way against every store."""

import asyncio

import pytest

from gearjobs.jobs import RequestIdentifier, ResponseFailure, ResponseSuccess
from gearjobs.store import (
    ENDED,
    Body,
    Chunk,
    Entry,
    Event,
    Failed,
    JobKey,
    JobRecord,
    JobState,
    Store,
    StoreUnavailable,
    Succeeded,
    lost_entry,
)


def record(user: str = "alice", *, name: str = "echo", created: float = 1.0) -> JobRecord:
    return JobRecord(
        JobKey(user, RequestIdentifier.new()), name, "fp", node="n1", created_at=created
    )


STREAM: list[Entry] = [
    Succeeded(ResponseSuccess.ACCEPTED, Body.EVENTS, {"Count-Total": 2}),
    Event({"n": 1}),
    Event({"n": 2}),
    ENDED,
]


async def finish(store: Store, rec: JobRecord, entries: list[Entry], at: float = 10.0) -> None:
    rec.state = JobState.SUCCEEDED
    rec.finished_at = at
    await store.finish(rec, entries)


async def test_the_first_claim_wins_and_later_ones_get_the_holder(store: Store) -> None:
    rec = record()
    first = await store.claim(rec)
    assert first.claimed
    again = JobRecord(rec.key, "echo", "other", node="n2")
    second = await store.claim(again)
    assert not second.claimed
    assert second.existing is not None
    assert (second.existing.fingerprint, second.existing.node) == ("fp", "n1")


async def test_concurrent_claims_of_one_id_have_exactly_one_winner(store: Store) -> None:
    key = JobKey("alice", RequestIdentifier.new())
    results = await asyncio.gather(
        *(store.claim(JobRecord(key, "echo", "fp", node=f"n{i}")) for i in range(50))
    )
    assert sum(r.claimed for r in results) == 1


async def test_ids_are_scoped_by_user(store: Store) -> None:
    ident = RequestIdentifier.new()
    a = await store.claim(JobRecord(JobKey("alice", ident), "echo", "fp"))
    b = await store.claim(JobRecord(JobKey("bob", ident), "echo", "fp"))
    assert a.claimed and b.claimed


async def test_a_lost_job_can_be_claimed_again_with_a_fresh_journal(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    rec.state = JobState.LOST
    rec.finished_at = 5.0
    await store.finish(rec, [Failed(ResponseFailure.UNAVAILABLE, "lost")])
    retry = JobRecord(rec.key, "echo", "fp", node="n2")
    assert (await store.claim(retry)).claimed
    got = await store.get(rec.key)
    assert got is not None and got.run == 2 and got.state is JobState.QUEUED
    assert await store.read(rec.key) == []


async def test_a_finished_job_is_replaced_only_for_its_current_run(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    await finish(store, rec, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
    assert not (await store.claim(JobRecord(rec.key, "echo", "fp"), replace_run=7)).claimed
    assert (await store.claim(JobRecord(rec.key, "echo", "fp"), replace_run=1)).claimed


async def test_finish_records_the_journal_and_read_pages_through_it(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    chunks = [Chunk(f"{i}\n".encode()) for i in range(10)]
    entries: list[Entry] = [Succeeded(ResponseSuccess.OK, Body.TEXT, {"A": "1"}), *chunks, ENDED]
    await finish(store, rec, entries)
    assert await store.read(rec.key) == entries
    assert await store.read(rec.key, 3, 4) == entries[3:7]
    assert await store.read(rec.key, 100) == []
    got = await store.get(rec.key)
    assert got is not None and got.state is JobState.SUCCEEDED and got.finished_at == 10.0


async def test_follow_replays_a_finished_journal(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    await finish(store, rec, STREAM)
    assert [e async for e in store.follow(rec.key)] == STREAM
    assert [e async for e in store.follow(rec.key, 2)] == STREAM[2:]


async def test_follow_waits_for_entries_of_a_job_running_elsewhere(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    reader = asyncio.create_task(_collect(store, rec.key))
    await asyncio.sleep(0.01)
    assert not reader.done()
    if store.live_journal:
        await store.append(rec.key, STREAM[:2])
        await finish(store, rec, STREAM[2:])
    else:
        await finish(store, rec, STREAM)
    assert await asyncio.wait_for(reader, 10) == STREAM


async def _collect(store: Store, key: JobKey) -> list[Entry]:
    return [e async for e in store.follow(key, poll=0.001)]


async def test_list_gives_kept_records_newest_first_with_filters_and_cursor(store: Store) -> None:
    made = []
    for i in range(6):
        rec = record("alice" if i % 3 else "bob", name="echo" if i % 2 else "sleep", created=i)
        await store.claim(rec)
        made.append(rec)
    alice = await store.list_records(user="alice")
    assert [r.created_at for r in alice] == [5, 4, 2, 1]
    page = await store.list_records(user="alice", limit=2)
    rest = await store.list_records(
        user="alice", before=(page[-1].created_at, str(page[-1].key.id))
    )
    assert [r.created_at for r in page + rest] == [5, 4, 2, 1]
    assert [r.created_at for r in await store.list_records(name="sleep")] == [4, 2, 0]
    await finish(store, made[5], [Succeeded(ResponseSuccess.OK, Body.NONE, {})])
    done = await store.list_records(state=JobState.SUCCEEDED)
    assert [r.key for r in done] == [made[5].key]


async def test_recover_marks_the_unfinished_jobs_of_a_node_lost(store: Store) -> None:
    mine, other, finished = record(), record(), record()
    other.node = "n2"
    for rec in (mine, other, finished):
        await store.claim(rec)
    await finish(store, finished, [Succeeded(ResponseSuccess.OK, Body.NONE, {})])
    lost = await store.recover("n1", 99.0)
    assert [r.key for r in lost] == [mine.key]
    got = await store.get(mine.key)
    assert got is not None and got.state is JobState.LOST and got.finished_at == 99.0
    assert got.failure is ResponseFailure.UNAVAILABLE
    assert await store.read(mine.key) == [lost_entry()], "its readers get the lost answer"
    still = await store.get(other.key)
    assert still is not None and still.state is JobState.QUEUED


async def test_prune_drops_old_answers_remembers_ids_then_forgets_the_oldest(store: Store) -> None:
    recs = [record() for _ in range(4)]
    for i, rec in enumerate(recs):
        await store.claim(rec)
        await finish(store, rec, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, i)], at=float(i))
    # Answers finished before now - retention (= 2.5) go; ids 0..2 stay remembered, 2 of them.
    await store.prune(now=12.5, retention=10.0, remember=2)
    kept = await store.get(recs[3].key)
    assert kept is not None and kept.kept
    assert await store.read(recs[3].key) != []
    for rec in recs[1:3]:
        got = await store.get(rec.key)
        assert got is not None and not got.kept
        assert await store.read(rec.key) == []
    assert await store.get(recs[0].key) is None
    assert [r.key for r in await store.list_records()] == [recs[3].key]


async def test_a_remembered_id_keeps_its_record_without_its_answer(store: Store) -> None:
    """On Redis a remembered id was a stub (name "", state succeeded, created_at 0, no
    fingerprint): `GET /jobs/{id}` showed a made-up record, and the same id with another
    request answered ran-to-completion there but request-mismatch (422) on SQLite."""
    rec = record()
    await store.claim(rec)
    rec.state, rec.failure, rec.finished_at = JobState.FAILED, ResponseFailure.NOT_FOUND, 3.0
    await store.finish(rec, [Failed(ResponseFailure.NOT_FOUND, "gone")])
    await store.prune(now=100.0, retention=10.0, remember=100)
    got = await store.get(rec.key)
    assert got is not None and not got.kept
    shown = (got.name, got.fingerprint, got.state, got.failure, got.created_at, got.node)
    assert shown == (rec.name, rec.fingerprint, JobState.FAILED, ResponseFailure.NOT_FOUND,
                     rec.created_at, rec.node)  # fmt: skip
    assert await store.read(rec.key) == []
    again = await store.claim(JobRecord(rec.key, rec.name, "another-fingerprint"))
    assert not again.claimed
    assert again.existing is not None and again.existing.fingerprint == rec.fingerprint


async def test_prune_forgets_lost_jobs_entirely(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    rec.state = JobState.LOST
    rec.finished_at = 1.0
    await store.finish(rec, [Failed(ResponseFailure.UNAVAILABLE, "lost")])
    await store.prune(now=100.0, retention=10.0, remember=100)
    assert await store.get(rec.key) is None


async def test_a_lost_id_is_not_freed_for_a_different_request(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    rec.state = JobState.LOST
    rec.finished_at = 5.0
    await store.finish(rec, [Failed(ResponseFailure.UNAVAILABLE, "lost")])
    other = await store.claim(JobRecord(rec.key, "echo", "another-fingerprint"))
    assert not other.claimed
    assert other.existing is not None and other.existing.state is JobState.LOST


async def test_appends_and_a_finish_sent_again_from_their_position_leave_one_copy(
    store: Store,
) -> None:
    """A write whose outcome the caller never learned (the store stopped answering) is sent
    again from the same position; what the journal holds already is not written twice."""
    rec = record()
    await store.claim(rec)
    await store.append(rec.key, STREAM[:2], start=0)
    await store.append(rec.key, STREAM[:2], start=0)  # the same write, tried again
    await store.append(rec.key, STREAM[1:3], start=1)  # overlaps by one
    assert await store.read(rec.key) == STREAM[:3]
    rec.state = JobState.SUCCEEDED
    rec.finished_at = 10.0
    await store.finish(rec, STREAM[2:], start=2)
    await store.finish(rec, STREAM[2:], start=2)  # a finish that ran, tried again
    assert await store.read(rec.key) == STREAM
    got = await store.get(rec.key)
    assert got is not None and got.state is JobState.SUCCEEDED


async def test_entries_that_would_leave_a_gap_in_a_journal_are_refused(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    await store.append(rec.key, STREAM[:1], start=0)
    with pytest.raises(StoreUnavailable, match="earlier write is missing"):
        await store.append(rec.key, STREAM[2:3], start=2)
    rec.state = JobState.SUCCEEDED
    rec.finished_at = 10.0
    with pytest.raises(StoreUnavailable, match="earlier write is missing"):
        await store.finish(rec, STREAM[3:], start=3)
    assert await store.read(rec.key) == STREAM[:1]
    got = await store.get(rec.key)
    assert got is not None and not got.state.finished


async def test_entries_without_a_position_go_at_the_end(store: Store) -> None:
    rec = record()
    await store.claim(rec)
    await store.append(rec.key, STREAM[:1])
    await store.append(rec.key, STREAM[:1])
    assert await store.read(rec.key) == [STREAM[0], STREAM[0]]


async def test_a_prune_of_more_than_a_batch_remembers_exactly_the_newest_ids(
    store: Store,
) -> None:
    recs = [record() for _ in range(1_100)]  # more than a prune's batch of 500
    for i, rec in enumerate(recs):
        await store.claim(rec)
        await finish(store, rec, [Succeeded(ResponseSuccess.OK, Body.NONE, {})], at=float(i))
    await store.prune(now=10_000.0, retention=10.0, remember=100)
    known = [await store.get(rec.key) is not None for rec in recs]
    assert known == [False] * 1_000 + [True] * 100
