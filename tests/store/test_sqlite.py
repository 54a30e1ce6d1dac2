"""What the SQLite store adds to the contract: a file that outlives the process."""

import asyncio
import contextlib
import math
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearjobs._json import dumps
from gearjobs.dispatcher import Dispatcher
from gearjobs.jobs import (
    GearjobsError,
    RequestIdentifier,
    Response,
    ResponseFailure,
    ResponseSuccess,
)
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
    MemoryStore,
    SQLiteStore,
    StoreUnavailable,
    Succeeded,
    decode_entry,
    encode_entry,
    lost_entry,
    store_from_url,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@given(json_values, st.dictionaries(st.text(min_size=1), st.text() | st.integers(), max_size=3))
def test_entries_round_trip_through_their_encoding(value: Any, pending: dict[str, Any]) -> None:
    entries: list[Entry] = [
        Succeeded(ResponseSuccess.ACCEPTED, Body.DATA, pending, value),
        Succeeded(ResponseSuccess.OK, Body.TEXT, pending),
        Chunk(b"\x00\xffbytes"),
        Event(value),
        ENDED,
        Failed(ResponseFailure.INVALID_REQUEST, "bad", value),
    ]
    for entry in entries:
        assert decode_entry(*encode_entry(entry)) == entry


@given(json_values, st.dictionaries(st.text(min_size=1), st.text() | st.integers(), max_size=3))
def test_data_encoded_as_the_job_wrote_it_is_stored_as_the_same_bytes(
    value: Any, pending: dict[str, Any]
) -> None:
    plain = Succeeded(ResponseSuccess.OK, Body.DATA, pending, value)
    encoded = Succeeded(ResponseSuccess.OK, Body.DATA, pending, value, dumps(value))
    assert encode_entry(encoded) == encode_entry(plain)
    assert decode_entry(*encode_entry(encoded)) == plain


def test_data_that_is_not_json_is_refused_with_a_clear_error() -> None:
    with pytest.raises(GearjobsError, match="not JSON-serializable"):
        encode_entry(Succeeded(ResponseSuccess.OK, Body.DATA, {}, object()))


async def test_a_finished_answer_survives_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    key = JobKey("alice", RequestIdentifier.new())
    entries: list[Entry] = [
        Succeeded(ResponseSuccess.OK, Body.TEXT, {"N": 2}),
        Chunk(b"a\n"),
        Chunk(b"b\n"),
        ENDED,
    ]
    first = SQLiteStore(path)
    await first.open()
    record = JobRecord(key, "sleep", "fp", node="n")
    await first.claim(record)
    record.state = JobState.SUCCEEDED
    record.finished_at = 1.0
    await first.finish(record, entries)
    await first.close()

    second = SQLiteStore(path)
    await second.open()
    try:
        got = await second.get(key)
        assert got is not None and got.state is JobState.SUCCEEDED
        assert await second.read(key) == entries
    finally:
        await second.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_store_urls_name_the_stores(tmp_path: Path) -> None:
    assert isinstance(store_from_url("memory://"), MemoryStore)
    sqlite = store_from_url(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(sqlite, SQLiteStore) and sqlite.path == tmp_path / "x.db"
    relative = store_from_url("sqlite:///gearjobs.db")
    assert isinstance(relative, SQLiteStore) and str(relative.path) == "gearjobs.db"
    for bad in ("sqlite://", "postgres://x", "nonsense"):
        with pytest.raises(GearjobsError, match="store"):
            store_from_url(bad)


async def test_an_unopenable_path_is_a_clear_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "missing-dir" / "jobs.db")
    with pytest.raises(GearjobsError, match="cannot open the SQLite store"):
        await store.open()
    await store.close()


async def test_a_finish_queued_now_is_seen_by_a_read_asked_after_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    try:
        record = echo_record()
        assert (await store.claim(record)).claimed
        record.state = JobState.SUCCEEDED
        written = store.finish_soon(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
        seen = await store.get(record.key)  # asked after the finish, not after its end
        assert seen is not None and seen.state is JobState.SUCCEEDED
        assert written.done()
    finally:
        await store.close()


def echo_record() -> JobRecord:
    """A new record of an echo job of user u, on node n."""
    return JobRecord(JobKey("u", RequestIdentifier.new()), "echo", "f", node="n")


def commits_of(store: SQLiteStore) -> list[str]:
    """A list that gets a COMMIT each time the store commits, from now on."""
    commits: list[str] = []
    store.db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    return commits


class Gated:
    """A job that has started (`started`) and waits for `release` to succeed."""

    def __init__(self, *, fast: bool) -> None:
        self.fast = fast
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def execute(self, response: Response) -> None:
        self.started.set()
        await self.release.wait()
        response.success(ResponseSuccess.OK)


def states_in_the_file(path: Path) -> dict[str, str]:
    """The state of each job row in the file, read by a connection of its own (by id)."""
    with sqlite3.connect(path) as db:
        found = dict(db.execute("SELECT id, state FROM jobs").fetchall())
    db.close()
    return found


async def test_a_young_claim_waits_out_other_jobs_commits_and_is_seen_by_any_later_read(
    tmp_path: Path,
) -> None:
    # A job that ends within WRITE_BEHIND writes one row, its answer's, even when other jobs'
    # answers are committed meanwhile (a fast job's claim written and then replaced doubled
    # its writes). Anything else asked of the store finds the claim written.
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    store.WRITE_BEHIND = 60.0  # the claims stay young for the whole test
    await store.open()

    try:
        young, other, third = (echo_record() for _ in range(3))
        for record in (young, other):
            assert (await store.claim(record)).claimed
        other.state = JobState.SUCCEEDED
        await store.finish(other, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
        assert states_in_the_file(path) == {str(other.key.id): "succeeded"}
        young.state = JobState.SUCCEEDED
        await store.finish(young, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 2)])
        assert states_in_the_file(path)[str(young.key.id)] == "succeeded"
        assert (await store.claim(third)).claimed
        assert await store.list_records(state=JobState.QUEUED) == [third]
        assert states_in_the_file(path)[str(third.key.id)] == "queued"
    finally:
        await store.close()


async def test_a_claim_is_written_once_due_with_nothing_else_asked_of_the_store(
    tmp_path: Path,
) -> None:
    # A long job's claim must reach the file by itself: after kill -9 the job is then `lost`,
    # not unknown. Nothing is asked of the store meanwhile; only its own timer can write it.
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        record = JobRecord(JobKey("u", RequestIdentifier.new()), "sleep", "f", node="n")
        assert (await store.claim(record)).claimed
        found: dict[str, str] = {}
        async with asyncio.timeout(10):
            while not found:  # polls the file from outside, every WRITE_BEHIND
                await asyncio.sleep(store.WRITE_BEHIND)
                found = states_in_the_file(path)
        assert found == {str(record.key.id): "queued"}
    finally:
        await store.close()


FIRST_SCHEMA = """
CREATE TABLE jobs (
    user TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, fingerprint TEXT NOT NULL,
    state TEXT NOT NULL, run INTEGER NOT NULL, node TEXT NOT NULL, created_at REAL NOT NULL,
    started_at REAL, finished_at REAL, success TEXT, body TEXT, failure TEXT,
    kept INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (user, id)
) WITHOUT ROWID;
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_finished ON jobs (kept, finished_at);
CREATE INDEX jobs_node ON jobs (node, state);
CREATE TABLE journal (
    user TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    payload BLOB NOT NULL, PRIMARY KEY (user, id, seq)
) WITHOUT ROWID;
"""


async def test_a_file_of_the_first_schema_opens_with_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    ident = RequestIdentifier.new()
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_SCHEMA)
        db.execute(
            "INSERT INTO jobs (user, id, name, fingerprint, state, run, node, created_at) "
            "VALUES ('u', ?, 'echo', 'f', 'running', 1, 'n1', 1.0)",
            (str(ident),),
        )
    db.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        lost = await store.recover("n1", 2.0)
        assert [record.key for record in lost] == [JobKey("u", ident)]
        record = await store.get(JobKey("u", ident))
        assert record is not None and record.state is JobState.LOST
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert "jobs_node" not in indexes and "jobs_unfinished" in indexes


SECOND_SCHEMA = """
CREATE TABLE jobs (
    user TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, fingerprint TEXT NOT NULL,
    state TEXT NOT NULL, run INTEGER NOT NULL, node TEXT NOT NULL, created_at REAL NOT NULL,
    started_at REAL, finished_at REAL, success TEXT, body TEXT, failure TEXT,
    kept INTEGER NOT NULL DEFAULT 1, answer_kind TEXT, answer BLOB, PRIMARY KEY (user, id)
);
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_finished ON jobs (kept, finished_at);
CREATE INDEX jobs_unfinished ON jobs (node) WHERE state IN ('queued', 'running');
CREATE TABLE journal (
    user TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    payload BLOB NOT NULL, PRIMARY KEY (user, id, seq)
) WITHOUT ROWID;
"""


async def test_a_file_of_the_second_schema_replays_its_answers_after_the_copy(
    tmp_path: Path,
) -> None:
    # The second schema kept a primary key on (user, id); opening copies its rows into a
    # table addressed by key. Answers held in the row and streams in `journal` both replay,
    # and an id of the old file is still taken.
    path = tmp_path / "old.db"
    data_id, stream_id = RequestIdentifier.new(), RequestIdentifier.new()
    data = encode_entry(Succeeded(ResponseSuccess.OK, Body.DATA, {"X": "1"}, {"echo": 1}))
    stream: list[Entry] = [Succeeded(ResponseSuccess.OK, Body.TEXT, {}), Chunk(b"tick\n"), ENDED]
    with sqlite3.connect(path) as db:
        db.executescript(SECOND_SCHEMA)
        for ident, at, answer in ((data_id, 1.0, data), (stream_id, 2.0, (None, None))):
            db.execute(
                "INSERT INTO jobs (user, id, name, fingerprint, state, run, node, created_at, "
                "finished_at, success, body, answer_kind, answer) "
                "VALUES ('u', ?, 'echo', 'f', 'succeeded', 1, 'n1', ?, ?, 'ok', ?, ?, ?)",
                (str(ident), at, at, "data" if answer[0] else "text", *answer),
            )
        db.executemany(
            "INSERT INTO journal (user, id, seq, kind, payload) VALUES ('u', ?, ?, ?, ?)",
            [(str(stream_id), i, *encode_entry(entry)) for i, entry in enumerate(stream)],
        )
    db.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.read(JobKey("u", data_id)) == [decode_entry(*data)]
        assert await store.read(JobKey("u", stream_id)) == stream
        taken = await store.claim(JobRecord(JobKey("u", data_id), "echo", "f", node="n2"))
        assert not taken.claimed and taken.existing is not None
        assert taken.existing.state is JobState.SUCCEEDED
        listed = await store.list_records(user="u")
        assert [record.key.id for record in listed] == [stream_id, data_id]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    db.close()
    assert "jobs_before" not in names
    assert not any(name.startswith("sqlite_autoindex_jobs") for name in names)
    assert columns[0] == "key"


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"user": "u"},
        {"state": JobState.RUNNING},
        {"state": JobState.SUCCEEDED, "name": "echo"},
        {"user": "u", "before": (5.0, "abc")},
    ],
    ids=["all", "user", "running", "state-and-name", "user-and-cursor"],
)
async def test_the_listing_reads_an_index_backwards_instead_of_sorting_the_records(
    tmp_path: Path, query: dict[str, Any]
) -> None:
    # The listing, newest first, stops at its limit instead of sorting every record kept.
    # A file made with the index of before (`jobs_created`, which the listing did not use)
    # gets the new one.
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    await store.open()  # makes the file; then the index becomes the old one
    await store.close()
    with sqlite3.connect(path) as db:
        db.executescript(
            "DROP INDEX jobs_listed; CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);"
        )
    db.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        statements: list[str] = []
        store.db.set_trace_callback(statements.append)  # the SQL with its values in place
        await store.list_records(limit=3, **query)
        store.db.set_trace_callback(None)
        [listing] = [sql for sql in statements if sql.startswith("SELECT")]
        plan = " ".join(row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {listing}"))
        names = {row[0] for row in store.db.execute("SELECT name FROM sqlite_master")}
    finally:
        await store.close()
    assert "jobs_created" not in names
    assert "USING INDEX jobs_listed" in plan and "TEMP B-TREE" not in plan, plan


async def test_records_made_after_a_reopen_do_not_take_the_place_of_older_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    keys = [JobKey("u", RequestIdentifier.new()) for _ in range(6)]
    for batch in (keys[:3], keys[3:]):  # three records, then three more after a reopen
        store = SQLiteStore(path)
        await store.open()
        try:
            for n, key in enumerate(batch):
                record = JobRecord(key, "echo", "f", node="n")
                assert (await store.claim(record)).claimed
                record.state = JobState.SUCCEEDED
                await store.finish(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, n)])
        finally:
            await store.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        answers = [await store.read(key) for key in keys]
        assert [a[0].data for a in answers if isinstance(a[0], Succeeded)] == [0, 1, 2, 0, 1, 2]
    finally:
        await store.close()


DISK_FULL = (
    "CREATE TRIGGER full BEFORE UPDATE OF kept ON jobs WHEN NEW.kept = 0 "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)
"""Stands in for a disk that fills up while a prune runs."""


async def finished(store: SQLiteStore, key: JobKey, state: JobState, at: float) -> None:
    record = JobRecord(key, "job", "fp", node="n")
    assert (await store.claim(record)).claimed
    record.state, record.finished_at = state, at
    entry: Entry = (
        Failed(ResponseFailure.UNAVAILABLE, "lost")
        if state is JobState.LOST
        else Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)
    )
    await store.finish(record, [entry])


async def test_a_prune_of_many_batches_remembers_exactly_the_newest_ids(tmp_path: Path) -> None:
    # 1,300 answers past their retention, three a second (so finish times tie), and 700 ids
    # to remember: the forgetting takes two batches of 500 and must stop at the 700 newest,
    # ties taken in the order the jobs were first claimed. (The old prune met this too, more
    # slowly: this guards the rewrite that finds the last id to forget once.)
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    try:
        keys = [JobKey("u", RequestIdentifier.new()) for _ in range(1300)]
        for i, key in enumerate(keys):
            await finished(store, key, JobState.SUCCEEDED, float(i // 3))
        await store.prune(now=10_000.0, retention=10.0, remember=700)
        remembered = [await store.get(key) is not None for key in keys]
    finally:
        await store.close()
    assert remembered == [False] * 600 + [True] * 700


async def test_a_prune_that_rolls_back_leaves_every_id_it_touched_taken(tmp_path: Path) -> None:
    # The prune deletes a lost record, then fails on the next one: the transaction rolls
    # back, and the store must again know the lost record's id. Otherwise a new claim of it
    # would be a second row for one id, and after the next prune a repeat would run again.
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    try:
        lost, done = JobKey("u", RequestIdentifier.new()), JobKey("u", RequestIdentifier.new())
        await finished(store, lost, JobState.LOST, 1.0)
        await finished(store, done, JobState.SUCCEEDED, 2.0)
        store.db.execute(DISK_FULL)
        with pytest.raises(sqlite3.Error, match="disk is full"):
            await store.prune(now=100.0, retention=10.0, remember=1000)
        store.db.execute("DROP TRIGGER full")
        record = await store.get(lost)
        assert record is not None and record.state is JobState.LOST
        await finished(store, lost, JobState.SUCCEEDED, 95.0)  # the retry of the lost job
        await store.prune(now=100.0, retention=10.0, remember=1000)
        again = await store.claim(JobRecord(lost, "job", "fp", node="n"))
        assert not again.claimed, "a repeat joins the finished answer, it does not run"
        assert again.existing is not None and again.existing.state is JobState.SUCCEEDED
    finally:
        await store.close()


async def test_a_second_store_on_the_same_file_is_refused_while_the_first_is_open(
    tmp_path: Path,
) -> None:
    # Each store decides claims in memory: two writers of one file could run an id twice.
    path = tmp_path / "jobs.db"
    first = SQLiteStore(path)
    await first.open()
    second = SQLiteStore(path)
    try:
        with pytest.raises(GearjobsError, match="in use by another process"):
            await second.open()
    finally:
        await first.close()
    await second.open()  # free once the first has closed
    await second.close()


async def test_a_row_under_a_known_key_but_of_another_owner_is_no_ones_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        mine = JobKey("alice", RequestIdentifier.new())
        await finished(store, mine, JobState.SUCCEEDED, 1.0)
        store.db.execute("UPDATE jobs SET user = 'bob'")  # what a stray writer could leave
        assert await store.get(mine) is None
        assert await store.read(mine) == []
    finally:
        await store.close()


async def finish_jobs(store: SQLiteStore, count: int, chunk: Chunk) -> None:
    """Claim and finish `count` jobs, one at a time, each answering `chunk` as text."""
    for _ in range(count):
        record = echo_record()
        await store.claim(record)
        record.state = JobState.SUCCEEDED
        await store.finish(record, [Succeeded(ResponseSuccess.OK, Body.TEXT, {}), chunk])


async def test_the_store_checkpoints_its_wal_into_the_file_while_it_runs(tmp_path: Path) -> None:
    # SQLite's own checkpoints are off (they would sync on the event loop); the store's thread
    # runs them instead. Without them the WAL would hold every write until close.
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    store.CHECKPOINT_EVERY = 0.0
    await store.open()
    try:
        size_before = path.stat().st_size
        await finish_jobs(store, 50, Chunk(b"x" * 8192))
        assert store._checkpoint is not None
        await store._checkpoint
        assert path.stat().st_size > size_before + 50 * 8192
    finally:
        await store.close()


async def test_a_write_nobody_waits_for_is_committed_on_its_own(tmp_path: Path) -> None:
    # Finished answers wait up to WRITE_BEHIND seconds to share a commit; with nothing else
    # asked of the store, the write still reaches the file.
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        record = echo_record()
        await store.claim(record)
        record.state = JobState.SUCCEEDED
        written = store.finish_soon(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
        await asyncio.wait([written], timeout=10)  # a guard: it must end by itself
        assert written.done()
        with sqlite3.connect(path) as other:
            (state,) = other.execute("SELECT state FROM jobs WHERE id = ?", (str(record.key.id),))
        other.close()
        assert state == ("succeeded",)
    finally:
        await store.close()


async def test_the_wal_starts_over_after_each_checkpoint_instead_of_growing(
    tmp_path: Path,
) -> None:
    # A checkpoint that runs alongside writes never catches up, and the WAL then grows
    # without end; the store holds its batches while one runs.
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    store.CHECKPOINT_EVERY = 0.0
    await store.open()
    try:
        await finish_jobs(store, 100, Chunk(b"x" * 8192))
        wal = path.with_name(path.name + "-wal")
        assert path.stat().st_size > 100 * 8192  # everything reached the file
        assert wal.stat().st_size < 1024 * 1024  # about one batch, not the 100
    finally:
        await store.close()


class SlowCheckpoints(SQLiteStore):
    """Checkpoints that wait for the test (as on a slow disk)."""

    CHECKPOINT_EVERY = 0.0

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.go_on = threading.Event()

    def _run_checkpoint(self) -> None:
        self.go_on.wait(30)
        super()._run_checkpoint()


async def test_reads_go_on_while_a_checkpoint_runs_and_writes_wait_for_its_end(
    tmp_path: Path,
) -> None:
    store = SlowCheckpoints(tmp_path / "jobs.db")
    await store.open()
    try:
        first = echo_record()
        await store.claim(first)
        first.state = JobState.SUCCEEDED
        await store.finish(first, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
        assert store._checkpoint is not None and not store._checkpoint.done()
        reading = asyncio.ensure_future(store.get(first.key))
        await asyncio.wait([reading], timeout=10)  # a guard: the old store waited here
        assert reading.done() and not store._checkpoint.done(), "read during the checkpoint"
        seen = reading.result()
        assert seen is not None and seen.state is JobState.SUCCEEDED
        assert await store.read(first.key) == [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)]
        second = echo_record()
        await store.claim(second)
        written = store.finish_soon(second, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 2)])
        store._hurry()
        after = asyncio.ensure_future(store.get(second.key))  # asked after a held write
        for _ in range(3):  # a batch runs one loop turn after it is asked for
            await asyncio.sleep(0)
        assert not written.done() and not after.done(), "both wait for the checkpoint"
        store.go_on.set()
        await written
        assert (await after) is not None
    finally:
        store.go_on.set()
        await store.close()


async def test_a_lost_id_pruned_and_claimed_in_one_batch_stays_known(tmp_path: Path) -> None:
    # Prune drops a lost record past retention; a claim of the same id (the same request,
    # which a lost id allows) lands later in the same batch. The id is in the file again, so
    # a third claim must not be decided in memory as if the id were new.
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    try:
        key = JobKey("u", RequestIdentifier.new())
        assert (await store.claim(JobRecord(key, "echo", "f", node="n", created_at=1))).claimed
        assert [r.key for r in await store.recover("n", now=2.0)] == [key]
        pruned, again = await asyncio.gather(
            store.prune(now=100.0, retention=10.0, remember=10),
            store.claim(JobRecord(key, "echo", "f", node="n", created_at=3)),
        )
        assert pruned == 1 and again.claimed
        third = await store.claim(JobRecord(key, "echo", "f", node="n", created_at=4))
        assert not third.claimed, "the job claimed by the second request still holds the id"
    finally:
        await store.close()


async def test_a_one_entry_answer_lives_in_the_jobs_row_until_retention_drops_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    answer = [Succeeded(ResponseSuccess.OK, Body.DATA, {"n": "1"}, {"echo": 1})]
    try:
        record = echo_record()
        await store.claim(record)
        record.state, record.finished_at = JobState.SUCCEEDED, 5.0
        await store.finish(record, answer)
        with sqlite3.connect(path) as other:
            (rows,) = other.execute("SELECT count(*) FROM journal").fetchone()
        other.close()
        assert rows == 0, "no journal rows: the answer is in the job's row"
        await store.update(record)  # writing the record again keeps its answer
        assert await store.read(record.key) == answer
        assert await store.read(record.key, 1) == []
        await store.prune(now=100.0, retention=10.0, remember=10)
        assert await store.read(record.key) == []
        pruned = await store.get(record.key)
        assert pruned is not None and not pruned.kept
    finally:
        await store.close()


async def test_claims_and_answers_queued_together_share_writes_and_keep_their_order(
    tmp_path: Path,
) -> None:
    """New claims and one-entry answers queued one after another go in two groups (one
    statement each in the batch), which may pass each other: a claim grouped behind its own
    answer is not written over it. Any other write closes the groups."""
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    keys = {name: JobKey("u", RequestIdentifier.new()) for name in "acsdf"}
    records = {name: JobRecord(key, "echo", "f", node="n") for name, key in keys.items()}

    def claim(name: str) -> None:
        assert store.claim_now(records[name]) is not None, "a new id is claimed in memory"

    def answer(name: str, entries: list[Entry]) -> asyncio.Future[None]:
        records[name].state = JobState.SUCCEEDED
        return store.finish_soon(records[name], entries)

    def data(n: int) -> list[Entry]:
        return [Succeeded(ResponseSuccess.OK, Body.DATA, {}, {"n": n})]

    stream: list[Entry] = [Succeeded(ResponseSuccess.OK, Body.TEXT, {}), Chunk(b"x"), ENDED]
    try:
        claim("a")
        claim("c")
        first = answer("a", data(1))
        claim("s")
        streamed = answer("s", stream)  # not a one-entry answer: closes both groups
        second = answer("c", data(2))
        claim("d")  # a new claims group, queued after the answers group of c and d
        third = answer("d", data(3))  # joins the answers group of c, queued before d's claim
        claim("f")  # claimed, never answered: its claim is written
        await asyncio.gather(first, streamed, second, third)
    finally:
        await store.close()
    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        for name, entries in (("a", data(1)), ("c", data(2)), ("d", data(3)), ("s", stream)):
            got = await reopened.get(keys[name])
            assert got is not None and got.state is JobState.SUCCEEDED, name
            assert await reopened.read(keys[name]) == entries, name
        queued = await reopened.get(keys["f"])
        assert queued is not None and queued.state is JobState.QUEUED
    finally:
        await reopened.close()


async def test_a_store_that_is_closing_refuses_new_work_at_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    record = echo_record()
    await store.close()
    with pytest.raises(StoreUnavailable, match="is closed"):
        await store.get(record.key)


async def test_a_row_that_cannot_be_written_fails_alone(tmp_path: Path) -> None:
    """A bad row (here a user that is no UTF-8: a lone surrogate) in a group fails its own
    write; its neighbours in the same statement are written and say so."""
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    good = echo_record()
    bad = JobRecord(JobKey("\ud800", RequestIdentifier.new()), "echo", "f", node="n")
    answer = [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)]
    try:
        for record in (good, bad):
            assert store.claim_now(record) is not None
            record.state = JobState.SUCCEEDED
        written = [store.finish_soon(record, answer) for record in (good, bad)]
        good_outcome, bad_outcome = await asyncio.gather(*written, return_exceptions=True)
        assert good_outcome is None
        assert isinstance(bad_outcome, UnicodeEncodeError)
        stored = await store.get(good.key)
        assert stored is not None and stored.state is JobState.SUCCEEDED
        assert await store.read(good.key) == answer
    finally:
        await store.close()


async def test_a_caller_giving_up_on_its_write_does_not_touch_its_neighbours(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    answer = [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)]
    a, b = (
        JobRecord(JobKey("u", RequestIdentifier.new()), "echo", "f", JobState.SUCCEEDED, node="n")
        for _ in range(2)
    )
    try:
        neighbour = store.finish_soon(a, answer)
        caller = asyncio.ensure_future(store.finish(b, answer))
        await asyncio.sleep(0)  # the caller waits for its write now
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)
        await neighbour  # written, not cancelled
        for record in (a, b):  # the write itself went on
            stored = await store.get(record.key)
            assert stored is not None and stored.state is JobState.SUCCEEDED
    finally:
        await store.close()


def _answered(store: SQLiteStore) -> asyncio.Future[None]:
    """Queue the answer of a new finished job, as a worker holding its answer does."""
    record = echo_record()
    record.state = JobState.SUCCEEDED
    written = store.finish_soon(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
    store.hurry()
    return written


async def _answers_turn_after_turn(store: SQLiteStore, count: int) -> list[int]:
    """Queue `count` answers, one a turn of the loop; for each, how many were written before."""
    loop = asyncio.get_running_loop()
    written: list[asyncio.Future[None]] = []
    seen: list[int] = []
    ended = loop.create_future()

    def answer() -> None:
        seen.append(sum(future.done() for future in written))
        if len(written) < count:
            loop.call_soon(answer)  # ahead of the batch that `hurry` schedules below
            written.append(_answered(store))
        else:
            ended.set_result(None)

    loop.call_soon(answer)
    await ended
    await asyncio.gather(*written)
    return seen


async def test_answers_that_keep_coming_turn_after_turn_share_one_commit(tmp_path: Path) -> None:
    # A group commit: a batch that answers wait for waits while each turn of the loop queues
    # more of them (before, each turn's answers had a commit of their own).
    store = SQLiteStore(tmp_path / "jobs.db")
    store.CHECKPOINT_EVERY = math.inf
    await store.open()
    try:
        commits = commits_of(store)
        seen = await _answers_turn_after_turn(store, 5)
        assert len(commits) == 1
        assert seen == [0] * 6  # none written while they came
    finally:
        await store.close()


async def test_answers_that_never_stop_coming_are_written_within_settle_turns(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    store.CHECKPOINT_EVERY = math.inf  # a checkpoint makes batches wait: not what this is about
    await store.open()
    try:
        seen = await _answers_turn_after_turn(store, 4 * store.SETTLE_TURNS)
        # No batch waits more than SETTLE_TURNS turns; its outcome takes one more turn, and
        # `seen` is taken at the start of a turn: the answer queued in turn i is seen written
        # by turn i + SETTLE_TURNS + 2.
        bound = store.SETTLE_TURNS + 2
        late = [turn for turn, written in enumerate(seen) if written < turn - bound + 1]
        assert late == [], seen
        assert 1 < seen[bound] < bound  # yet they did share a commit
    finally:
        await store.close()


async def test_a_lone_answer_is_written_in_the_next_turn_of_the_loop(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    try:
        commits = commits_of(store)
        written = _answered(store)
        await asyncio.sleep(0)  # one turn, not a wait: the batch runs in it
        assert commits == ["COMMIT"]
        await written
    finally:
        await store.close()


async def test_a_job_whose_claim_was_never_written_has_its_answer_inserted_not_replaced(
    tmp_path: Path,
) -> None:
    # INSERT OR REPLACE costs a third more than INSERT; only a job whose claim reached the
    # file needs it.
    store = SQLiteStore(tmp_path / "jobs.db")
    store.WRITE_BEHIND = 60.0
    await store.open()
    try:
        young, written = (echo_record() for _ in range(2))
        for record in (young, written):
            assert (await store.claim(record)).claimed
        await store.list_records()  # a read: the young claims are written ahead of it
        assert set(states_in_the_file(tmp_path / "jobs.db")) == {
            str(young.key.id),
            str(written.key.id),
        }
        third = echo_record()
        assert (await store.claim(third)).claimed  # stays young
        statements: list[str] = []
        store.db.set_trace_callback(statements.append)
        for record in (written, third):
            record.state = JobState.SUCCEEDED
            await store.finish(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
        store.db.set_trace_callback(None)
        inserts = [sql for sql in statements if sql.startswith("INSERT")]
        assert [str(third.key.id) in sql for sql in inserts] == [False, True]
        assert inserts[0].startswith("INSERT OR REPLACE INTO jobs")
        assert inserts[1].startswith("INSERT INTO jobs")
        assert states_in_the_file(tmp_path / "jobs.db") == {
            str(young.key.id): "queued",
            str(written.key.id): "succeeded",
            str(third.key.id): "succeeded",
        }
    finally:
        await store.close()


async def test_an_insert_that_finds_a_row_replaces_it_without_failing_its_neighbours(
    tmp_path: Path,
) -> None:
    # Should a row be under a young claim's key after all, its answer's INSERT fails, and the
    # rows of that statement are written again one at a time, replacing what is there.
    store = SQLiteStore(tmp_path / "jobs.db")
    store.WRITE_BEHIND = 60.0
    await store.open()
    try:
        records = [echo_record() for _ in range(3)]
        for record in records:
            assert (await store.claim(record)).claimed
        odd = records[1]
        store.db.execute(
            "INSERT INTO jobs (key, user, id, name, fingerprint, state, run, node, created_at)"
            " VALUES (?, 'u', ?, 'echo', 'f', 'queued', 1, 'n', 0)",
            (store._keys[("u", str(odd.key.id))], str(odd.key.id)),
        )
        outcomes = []
        for record in records:
            record.state = JobState.SUCCEEDED
            outcomes.append(
                store.finish_soon(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, 1)])
            )
        store.hurry()
        assert await asyncio.gather(*outcomes) == [None, None, None]
        assert set(states_in_the_file(tmp_path / "jobs.db").values()) == {"succeeded"}
    finally:
        await store.close()


async def test_a_prune_finds_its_records_through_indexes_without_sorting(tmp_path: Path) -> None:
    # No index holds every record by `finished_at` (it cost a quarter of each job's write):
    # the records past retention are found through `jobs_listed` (created before finished),
    # those to forget through `jobs_forgettable`, which holds only records already pruned.
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    try:
        for n in range(6):
            record = JobRecord(
                JobKey("u", RequestIdentifier.new()), "echo", "f", node="n", created_at=n
            )
            assert (await store.claim(record)).claimed
            record.state, record.finished_at = JobState.SUCCEEDED, n + 0.5
            await store.finish(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {}, n)])
        statements: list[str] = []
        store.db.set_trace_callback(statements.append)
        changed = await store.prune(now=10.0, retention=6.0, remember=1)  # past: 0..3
        store.db.set_trace_callback(None)
        selects = [sql for sql in statements if sql.startswith("SELECT")]
        plans = [
            " ".join(row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in selects
        ]
        names = {row[0] for row in store.db.execute("SELECT name FROM sqlite_master")}
        kept = [r.created_at for r in await store.list_records()]
    finally:
        await store.close()
    assert changed == 4 + 3  # four answers dropped; three of their ids forgotten
    assert kept == [5, 4]
    assert "jobs_finished" not in names
    assert len(plans) == 3, selects  # past retention, the last to forget, those to forget
    for plan in plans:
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan
    assert "jobs_listed" in plans[0] and all("jobs_forgettable" in p for p in plans[1:]), plans


async def test_a_live_job_is_shown_only_once_its_claim_is_in_the_file(tmp_path: Path) -> None:
    # A client told "queued" must not find the id unknown after a crash a moment later: the
    # claim of a young job is written before `get` shows it.
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    store.WRITE_BEHIND = 60.0  # young for the whole test, unless `get` writes it
    async with Dispatcher(store=store) as dispatcher:
        ident = RequestIdentifier.new()
        job = Gated(fast=True)
        handle = await dispatcher.dispatch(ident, job)
        try:
            assert states_in_the_file(path) == {}
            shown = await dispatcher.get(JobKey("anonymous", ident))
            assert shown is not None and shown.state in (JobState.QUEUED, JobState.RUNNING)
            assert states_in_the_file(path) == {str(ident): "queued"}
        finally:
            job.release.set()
        await handle
    await store.close()


async def test_jobs_left_unfinished_in_the_file_are_lost_whatever_node_opens_it_next(
    tmp_path: Path,
) -> None:
    # One writer at a time (the lock): whoever opens the file next runs none of the jobs it
    # holds unfinished. A server restarted under another port (another node name) left them
    # queued for good.
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    left = JobRecord(JobKey("u", RequestIdentifier.new()), "sleep", "f", node="127.0.0.1:1")
    assert (await store.claim(left)).claimed
    await store.close()  # as a kill -9 would leave it: written, never finished
    store = SQLiteStore(path)
    await store.open()
    try:
        mine = JobRecord(JobKey("u", RequestIdentifier.new()), "sleep", "f", node="other")
        lost = await store.recover("127.0.0.1:2", 5.0)
        assert [record.key for record in lost] == [left.key]
        found = await store.get(left.key)
        assert found is not None and found.state is JobState.LOST
        assert await store.read(left.key) == [lost_entry()]
        assert (await store.claim(mine)).claimed  # a job of this opening, of another node
        assert await store.recover("127.0.0.1:2", 6.0) == []  # is none of a recovery's
    finally:
        await store.close()


async def test_a_slow_job_is_running_in_the_file_while_it_runs(tmp_path: Path) -> None:
    # After a crash its lost record keeps when it started (it read queued, started_at null).
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(store.close)
        dispatcher = await stack.enter_async_context(Dispatcher(store=store))
        ident = RequestIdentifier.new()
        job = Gated(fast=False)
        handle = await dispatcher.dispatch(ident, job)
        try:
            await job.started.wait()
            with sqlite3.connect(path) as db:
                row = db.execute(
                    "SELECT state, started_at FROM jobs WHERE id = ?", (str(ident),)
                ).fetchone()
            db.close()
            assert row[0] == "running" and row[1] is not None
        finally:
            job.release.set()
        await handle
