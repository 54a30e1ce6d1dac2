"""The SQLite store: the embedded default, one file in WAL mode, durable across kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from gearjobs.jobs import GearjobsError, ResponseFailure
from gearjobs.store._base import (
    CLAIMED,
    ClaimResult,
    Store,
    StoreUnavailable,
    lost_entry,
    not_yet_written,
)
from gearjobs.store._codec import decode_entry, encode_entry, record_from_row, record_row
from gearjobs.store._records import Entry, JobKey, JobRecord, JobState

logger = logging.getLogger("gearjobs.store")

__all__ = ("SQLiteStore",)

T = TypeVar("T")

# `jobs` is addressed by `key`, a number this store hands out in order (its rowid): a new
# record is appended, and nothing on disk is ordered by the random request ids. The store
# keeps the key of every (user, id) of the file in memory (it is the file's only writer), so
# a lookup by id is a lookup by key. An index on (user, id) cost more than all the rest of a
# job's write: every insert dirtied a random page of it, and the cost grew with the file.
# The listing (kept records, newest first) reads `jobs_listed` backwards: no sort, and it
# stops at its limit. Before, the only index in the listing's order was `jobs_created`
# (created_at DESC, id DESC), which SQLite passed over for `jobs_finished`, since that
# one starts with `kept`: every listing sorted every kept record. Ascending, a new record
# goes at the index's right-hand end, where SQLite fills a new page without rebalancing
# its neighbours (descending, a commit of 15 jobs wrote 9.2 pages instead of 7.6).
# Only unfinished jobs are in `jobs_unfinished` (what recovery looks for), so writing a
# finished record does not touch it. Nor is a new record in `jobs_forgettable`: only records
# whose answer retention dropped (`kept` = 0), which a prune forgets oldest first; the prune
# finds the records past retention through `jobs_listed` (a record is created before it
# finishes). An index of every record by `finished_at` cost a quarter of a job's write.
# Files of the earlier schemas (a primary key on (user, id); the first one also WITHOUT
# ROWID, with an index on every node and state) are copied into this one when opened.
JOBS_TABLE = """
CREATE TABLE IF NOT EXISTS jobs (
    key INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    run INTEGER NOT NULL,
    node TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    success TEXT,
    body TEXT,
    failure TEXT,
    kept INTEGER NOT NULL DEFAULT 1,
    answer_kind TEXT,
    answer BLOB
)"""
SCHEMA = f"""
{JOBS_TABLE};
DROP INDEX IF EXISTS jobs_created;
CREATE INDEX IF NOT EXISTS jobs_listed ON jobs (kept, created_at, id);
DROP INDEX IF EXISTS jobs_finished;
CREATE INDEX IF NOT EXISTS jobs_forgettable ON jobs (finished_at, key) WHERE kept = 0;
DROP INDEX IF EXISTS jobs_node;
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (node) WHERE state IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS journal (
    user TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (user, id, seq)
) WITHOUT ROWID;
"""

COLUMNS = (
    "user, id, name, fingerprint, state, run, node, created_at, started_at, finished_at, "
    "success, body, failure, kept"
)
PRUNE_BATCH = 500


class SQLiteStore(Store):
    """Records and journals in one SQLite file (WAL mode).

    One process writes a file (as `gearjobs serve` does): it knows every id the file holds, so
    a claim of a new id is decided in memory and written in the next batch. Statements run in
    the order they were asked for (a read sees every write asked for before it), batched: what
    is asked during one turn of the event loop runs at the start of the next, in one IMMEDIATE
    transaction, so the number of commits does not grow with the request rate. A finished
    job's record and journal are written by one write: a crash leaves all of the answer or
    none.

    The batches run on the event loop's own thread. A commit writes to the WAL file without
    syncing it (`synchronous=NORMAL`); the syncs happen at checkpoints, which a thread of the
    store's own runs on a connection of its own. (Running the statements on a thread cost
    more than the statements: the two threads passed the GIL back and forth on every one.)
    """

    single_user = True

    CHECKPOINT_EVERY = 0.5
    """Seconds between checkpoints while there are writes (SQLite's own are turned off)."""
    WRITE_BEHIND = 0.005
    """Seconds a write that nobody waits for may wait to share a commit with others."""
    SETTLE_TURNS = 8
    """Turns of the loop a batch that answers wait for may wait while answers keep coming
    (see `hurry`)."""

    def __init__(self, path: str | Path = "gearjobs.db") -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gearjobs-sqlite")
        self._db: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop the store is opened on, which it is used from (see `_running_loop`)."""
        self._writes: list[tuple[Callable[[], Any], asyncio.Future[Any], bool]] = []
        """What was asked, in order: the statement, its outcome, whether it writes."""
        self._keys: dict[tuple[str, str], int] = {}
        """The key of every record in the file, by (user, id): a claim of any other id needs
        no read, and a record is read by its key."""
        self._next_key = 1
        self._first_key = 1
        """The first key handed out since the file was opened (lower keys are of before),
        until the first recovery (then 0)."""
        self._undo: list[tuple[tuple[str, str], int | None]] | None = None
        """While a transaction runs: what it changed in `_keys`, to undo on rollback."""
        self._lock: IO[bytes] | None = None
        self._unwritten: dict[tuple[str, str], Row] = {}
        """Claims not yet written: a job that finishes first writes its record only once."""
        self._young: dict[tuple[str, str], tuple[float, Row]] = {}
        """Claims not queued yet, with the loop time when they are due: a job that ends
        before (most fast jobs) never writes its claim. Anything else asked queues them
        first, so that it finds them written."""
        self._aging: asyncio.TimerHandle | None = None
        self._groups: dict[str, _Rows] = {}
        """The open groups (new claims, one-entry answers) by statement; see `_group`."""
        self._batch: asyncio.Handle | None = None
        self._batch_when: Literal["later", "settled", "soon"] = "soon"
        """When the next batch runs (if `_batch` is set): on a timer (only writes that
        nobody waits for are queued), once answers stop coming (`hurry`), or next turn."""
        self._answers = 0
        """How many answers were queued so far: `hurry` watches it grow."""
        self._closed = False
        self._checkpoint: asyncio.Future[None] | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._last_checkpoint = 0.0

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The store's loop. Asked of asyncio only before `open`: on Python 3.11 each
        `asyncio.get_running_loop()` makes a `getpid()` system call, and three a job were 5%
        of a request's time under wrk."""
        return self._loop or asyncio.get_running_loop()

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        loop = self._running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    async def _submit(self, func: Callable[..., T], *args: Any) -> T:
        """Run `func` in the next batch, after everything asked before."""
        return await self._enqueue(func, *args)

    async def _submit_read(self, func: Callable[..., T], *args: Any) -> T:
        """Like `_submit`, for `func` that only reads: it may run while a checkpoint does."""
        return await self._enqueue(func, *args, writes=False)

    def _enqueue(
        self, func: Callable[..., T], *args: Any, waited_for: bool = True, writes: bool = True
    ) -> asyncio.Future[T]:
        """Queue `func` for the next batch now; its outcome comes in the future returned.

        The batch runs in the next turn of the loop when someone waits for its outcome (a
        read, a claim that needs the file), else within `WRITE_BEHIND` seconds: writes that
        nobody waits for (new claims, finished answers) share fewer, larger commits. (A
        commit writes every page it changed to the WAL; most of its cost does not grow
        with the number of jobs in it.)
        """
        self._queue_young_claims()
        self._groups.clear()  # later rows must not move ahead of this
        return self._queue(functools.partial(func, *args), waited_for=waited_for, writes=writes)

    def _queue(
        self, func: Callable[[], T], *, waited_for: bool, writes: bool = True
    ) -> asyncio.Future[T]:
        if self._closed:
            raise StoreUnavailable(f"the job store ({self!r}) is closed")
        loop = self._running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._writes.append((func, future, writes))
        if waited_for:
            self._hurry()
        elif self._batch is None:
            self._batch = loop.call_later(self.WRITE_BEHIND, self._run_batch)
            self._batch_when = "later"
        return future

    def _group(self, sql: str) -> _Rows:
        """The open group of rows for `sql` (new claims or answers), or a new one at the end.

        A group is one `executemany` in the batch. The two groups stay open while only rows
        for them are queued, so a row may run ahead of rows of the other group queued before
        it: new claims and one-entry answers commute (an answer's record replaces its
        claim's, and a claim whose answer was queued is not written at all). Anything else
        queued closes both. Each row has its own outcome, known once the batch committed.
        """
        group = self._groups.get(sql)
        if group is None:
            group = _Rows(sql, self._running_loop(), claims=sql == _INSERT)
            self._queue(
                functools.partial(self._write_rows, group), waited_for=False
            ).add_done_callback(group.settle)
            self._groups[sql] = group
        return group

    def hurry(self) -> None:
        """Run the next batch soon: an answer waits for it. A group commit.

        The batch runs in the next turn of the loop, unless that turn queued more answers:
        then it waits another turn, and so on while answers keep coming, for at most
        `SETTLE_TURNS` turns. A lone answer waits one turn, as a read does; under load, one
        commit takes the answers of several turns (most of a commit's cost does not grow
        with the rows in it), and its answers wait a few turns more, during which the loop
        serves other requests.
        """
        if self._batch is None or self._batch_when == "later":
            if self._batch is not None:
                self._batch.cancel()
            loop = self._running_loop()
            self._batch = loop.call_soon(self._run_settled, self._answers, 1)
            self._batch_when = "settled"

    def _run_settled(self, answers: int, turns: int) -> None:
        """Run the batch if no answer was queued since the last turn, or it waited enough."""
        if self._answers != answers and turns < self.SETTLE_TURNS:
            loop = self._running_loop()
            self._batch = loop.call_soon(self._run_settled, self._answers, turns + 1)
        else:
            self._run_batch()

    def _hurry(self) -> None:
        """Run the next batch in the next turn of the loop."""
        if self._batch is None or self._batch_when != "soon":
            if self._batch is not None:
                self._batch.cancel()
            self._batch = self._running_loop().call_soon(self._run_batch)
            self._batch_when = "soon"

    def _run_batch(self) -> None:
        self._batch = None
        self._groups.clear()  # a batch takes the groups with it
        if self._checkpoint is not None and not self._checkpoint.done():
            # Writes wait for the checkpoint's end (which runs them); reads asked before any
            # of them need not.
            reads = 0
            while reads < len(self._writes) and not self._writes[reads][2]:
                reads += 1
            if reads == 0:
                return
            batch, self._writes = self._writes[:reads], self._writes[reads:]
        else:
            batch, self._writes = self._writes, []
        read_only = not any(writes for _, _, writes in batch)
        try:
            outcomes = self._apply([func for func, _, _ in batch], read_only=read_only)
        except Exception as exc:  # the transaction itself failed: every write did
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        if not read_only:
            self._maybe_checkpoint()

    def _apply(
        self, funcs: list[Callable[[], Any]], *, read_only: bool = False
    ) -> list[tuple[bool, Any]]:
        """All writes in one transaction; if one fails, each again in a transaction of its own."""
        db = self.db
        db.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
        self._undo = []
        try:
            results = [func() for func in funcs]
            db.execute("COMMIT")
            return [(True, result) for result in results]
        except Exception:
            self._roll_back()
            if len(funcs) == 1:
                raise
        except BaseException:
            self._roll_back()
            raise
        finally:
            self._undo = None
        outcomes: list[tuple[bool, Any]] = []
        for func in funcs:
            try:
                outcomes.append((True, self._apply([func], read_only=read_only)[0][1]))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    def _roll_back(self) -> None:
        """Roll the transaction back, and with it what it changed in `_keys`."""
        if self.db.in_transaction:  # a failed COMMIT may have rolled back already
            self.db.execute("ROLLBACK")
        for ident, key in reversed(self._undo or ()):
            if key is None:
                self._keys.pop(ident, None)
            else:
                self._keys[ident] = key

    def _maybe_checkpoint(self) -> None:
        """Start a checkpoint on the store's thread when the last one is old enough.

        No batch runs until it ends (the event loop does not wait; what is asked meanwhile
        waits in the queue), so it copies the whole WAL into the file and the next write
        starts the WAL from its beginning: with writes running alongside, a checkpoint would
        never catch up and the WAL would grow without end.
        """
        loop = self._running_loop()
        now = loop.time()
        if now - self._last_checkpoint < self.CHECKPOINT_EVERY:
            return
        self._last_checkpoint = now
        self._checkpoint = loop.run_in_executor(self._executor, self._run_checkpoint)
        self._checkpoint.add_done_callback(self._checkpointed)

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        _log_failed_checkpoint(done)
        if self._writes:
            self._hurry()

    def _run_checkpoint(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._checkpointer.execute("PRAGMA busy_timeout=5000")
        # PASSIVE: copies what it can without waiting for, or holding up, the writer.
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise GearjobsError(f"{self!r} is not open")
        return self._db

    async def open(self) -> None:
        if self._db is None:
            self._loop = asyncio.get_running_loop()
            await self._run(self._open)

    def _open(self) -> None:
        self._lock = _lock_for_writing(self.path)
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA wal_autocheckpoint=0")  # the store's thread checkpoints
            db.execute("PRAGMA journal_size_limit=67108864")  # a restarted WAL shrinks to 64 MiB
            db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the id indexes are written at random
            _migrate(db, self.path)
            db.executescript(SCHEMA)
            users: dict[str, str] = {}  # one string a user, not one a record
            self._keys = {
                (users.setdefault(user, user), ident): key
                for key, user, ident in db.execute(_ALL_KEYS)
            }
            self._next_key = self._first_key = max(self._keys.values(), default=0) + 1
        except BaseException as exc:
            self._unlock()
            if isinstance(exc, sqlite3.Error):
                raise GearjobsError(f"cannot open the SQLite store at {self.path}: {exc}") from exc
            raise
        self._db = db

    def check_ready(self, node: str | None = None) -> None:
        """Raise GearjobsError now if another process (or store) writes the file (whatever
        the node's name: the file has one writer).

        `open` takes the lock for good; this lets a program say so before it starts.
        """
        lock = _lock_for_writing(self.path)
        if lock is not None:
            lock.close()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    async def close(self) -> None:
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        if self._aging is not None:
            self._aging.cancel()
            self._aging = None
        self._queue_young_claims()
        if self._batch is not None:  # what was asked for is written first
            self._batch.cancel()
            self._run_batch()
        self._closed = True  # what is asked from now on fails at once
        if self._db is not None:
            await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._db is not None:
            self._db.close()  # the last connection checkpoints and removes the WAL file
            self._db = None
        self._unlock()

    # Claims and records

    async def claim(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult:
        result = self.claim_now(record, replace_run=replace_run)
        if result is not None:
            return result
        return await self._submit(self._claim, record, replace_run)

    def claim_now(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult | None:
        ident = (record.key.user, str(record.key.id))
        if ident not in self._keys:
            # A new id: nothing in the file can hold it (this process is its only writer), so
            # the claim is won here and written within `WRITE_BEHIND` seconds, without
            # waiting for it; a job that ends sooner writes one row, its answer's. A crash
            # before that write forgets a job that never finished: a retry runs it, as it
            # would run a lost one.
            if self._closed:
                raise StoreUnavailable(f"the job store ({self!r}) is closed")
            row = (self._new_key(ident), *record_row(record))
            self._unwritten[ident] = row
            loop = self._running_loop()
            due = loop.time() + self.WRITE_BEHIND
            self._young[ident] = (due, row)
            if self._aging is None:
                self._aging = loop.call_at(due, self._age_claims, due)
            return CLAIMED
        return None

    async def claims_written(self) -> None:
        if self._young or self._writes:  # claims not queued yet, or not written yet
            await self._submit_read(_nothing)  # the young claims are queued ahead of it

    def _age_claims(self, due_at: float) -> None:
        """Queue the claims made `WRITE_BEHIND` seconds ago or more; wake again for the rest.

        `due_at` is the time this call was due: the loop may call a little early, within
        its clock's resolution, and a claim due then must go now, not wake the loop again.
        """
        loop = self._running_loop()
        self._aging = None
        if self._queue_young_claims(due_by=max(loop.time(), due_at)):
            self._hurry()
        if self._young:
            due, _ = next(iter(self._young.values()))
            self._aging = loop.call_at(due, self._age_claims, due)

    def _queue_young_claims(self, *, due_by: float = math.inf) -> bool:
        """Queue the claims not queued yet that are due by `due_by` (default: all), ahead of
        what is asked next (which may need them); whether there were any."""
        young = self._young
        due = list(itertools.takewhile(lambda item: item[1][0] <= due_by, young.items()))
        if not due:
            return False
        claims = self._group(_INSERT)
        for ident, (_, row) in due:  # in the order made, so due in order too
            del young[ident]
            claims.add_claim(ident, row)
        return True

    def _new_key(self, ident: tuple[str, str]) -> int:
        """Hand out the next key, for the record of (user, id)."""
        key = self._next_key
        self._next_key = key + 1
        self._map(ident, key)
        return key

    def _map(self, ident: tuple[str, str], key: int | None) -> None:
        """Set (None: drop) the key of (user, id); inside a transaction, undone by rollback."""
        if self._undo is not None:
            self._undo.append((ident, self._keys.get(ident)))
        if key is None:
            self._keys.pop(ident, None)
        else:
            self._keys[ident] = key

    def _key(self, key: JobKey) -> int | None:
        """The key of the record of `key` (None: no record)."""
        return self._keys.get((key.user, str(key.id)))

    def _key_for(self, ident: tuple[str, str]) -> int:
        """The key of (user, id), handed out now if it has none."""
        key = self._keys.get(ident)
        return self._new_key(ident) if key is None else key

    def _write_rows(self, group: _Rows) -> list[BaseException | None]:
        """Write a group's rows; the outcome of each row written (None: written), in order.

        When the statement fails, the rows are written one at a time, so a bad row fails
        alone. Those go by INSERT OR REPLACE: the failed statement may have written the rows
        before the one it failed on, and writing a row again is the same write. If the
        failure ended the transaction, the batch has failed: that is raised for every row.
        """
        rows = group.rows
        if group.claims:
            # A claim is still unwritten unless its answer took over (written on its own).
            unwritten = self._unwritten
            rows = [
                row for key, row in zip(group.keys, rows, strict=True) if unwritten.get(key) is row
            ]
        db = self.db
        try:
            db.executemany(group.sql, rows)
            return [None] * len(rows)
        except Exception:
            if not db.in_transaction:
                raise
        outcomes: list[BaseException | None] = []
        again = _REPLACING.get(group.sql, group.sql)
        for row in rows:
            try:
                db.execute(again, row)
                outcomes.append(None)
            except Exception as exc:
                if not db.in_transaction:
                    raise
                outcomes.append(exc)
        return outcomes

    def _claim(self, record: JobRecord, replace_run: int | None) -> ClaimResult:
        db = self.db
        user, ident = record.key.user, str(record.key.id)
        key = self._keys.get((user, ident))
        if key is None:  # a prune earlier in this batch may have dropped it
            db.execute(_INSERT, (self._new_key((user, ident)), *record_row(record)))
            return CLAIMED
        row = db.execute(_BY_KEY, (key, user, ident)).fetchone()
        if row is not None:
            existing = record_from_row(row)
            free = (
                existing.state is JobState.LOST and existing.fingerprint == record.fingerprint
            ) or (
                replace_run is not None and existing.run == replace_run and existing.state.finished
            )
            if not free:
                return ClaimResult(False, existing)
            record.run = existing.run + 1
            db.execute("DELETE FROM journal WHERE user = ? AND id = ?", (user, ident))
        db.execute(_INSERT, (key, *record_row(record)))
        return CLAIMED

    async def get(self, key: JobKey) -> JobRecord | None:
        return await self._submit_read(self._get, key)

    def _get(self, key: JobKey) -> JobRecord | None:
        found = self._key(key)
        if found is None:
            return None
        row = self.db.execute(_BY_KEY, (found, key.user, str(key.id))).fetchone()
        return None if row is None else record_from_row(row)

    async def update(self, record: JobRecord) -> None:
        await self._submit(self._update, record.copy())

    def _update(self, record: JobRecord) -> None:
        key = self._key_for((record.key.user, str(record.key.id)))
        self.db.execute(_UPSERT, (key, *record_row(record)))  # keeps an answer held in the row

    # Journals

    async def append(
        self, key: JobKey, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        await self._submit(self._append, key, [encode_entry(e) for e in entries], start)

    def _append(
        self,
        key: JobKey,
        encoded: list[tuple[str, bytes]],
        start: int | None = None,
        *,
        fresh: bool = False,
    ) -> None:
        db = self.db
        user, ident = key.user, str(key.id)
        length = 0
        if not fresh:
            (length,) = db.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM journal WHERE user = ? AND id = ?",
                (user, ident),
            ).fetchone()
            encoded = list(not_yet_written(encoded, start, length))
        db.executemany(
            "INSERT INTO journal (user, id, seq, kind, payload) VALUES (?, ?, ?, ?, ?)",
            [(user, ident, length + i, kind, payload) for i, (kind, payload) in enumerate(encoded)],
        )

    async def finish(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        written = self.finish_soon(record, entries, start=start)
        self._hurry()
        await written

    def finish_soon(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> asyncio.Future[None]:
        # Encoding happens here, on the loop, so a value that is not JSON fails in the caller.
        # The journal is written in one piece with the record, from position 0 (SQLite's
        # journal is never live: nothing of it was written before, and a write that failed
        # was rolled back, so its outcome is always known). A journal of one entry (a data
        # answer, a failure) is kept in the job's own row: one B-tree insert a job instead
        # of two, and half the pages a commit writes; such answers queued one after another
        # share one statement (see `_group`). Entries after some `append`ed ones (`start`
        # > 0, which the dispatcher never asks of this store) go after those.
        encoded = [encode_entry(e) for e in entries]
        ident = (record.key.user, str(record.key.id))
        self._unwritten.pop(ident, None)
        # A claim still young was never queued: the file has no row under its key (new when
        # it was claimed), and a plain INSERT is a third cheaper than INSERT OR REPLACE.
        # (Should a row be there after all, the group's statement fails and its rows are
        # written again one at a time, replacing what is there: see `_write_rows`.)
        fresh = self._young.pop(ident, None) is not None
        key = self._key_for(ident)  # new when finished without a claim (as the tests do)
        self._answers += 1
        if len(encoded) == 1 and not start:
            answers = self._group(_INSERT_NEW_WITH_ANSWER if fresh else _INSERT_WITH_ANSWER)
            return answers.add((key, *record_row(record), *encoded[0]))
        return self._enqueue(
            self._finish, record.key, (key, *record_row(record)), encoded, start, waited_for=False
        )

    def _finish(
        self, key: JobKey, row: Row, encoded: list[tuple[str, bytes]], start: int | None
    ) -> None:
        self.db.execute(_INSERT, row)
        if encoded:
            self._append(key, encoded, start, fresh=not start)

    async def read(self, key: JobKey, offset: int = 0, limit: int = 1024) -> list[Entry]:
        rows = await self._submit_read(self._read, key, offset, limit)
        return [decode_entry(kind, payload) for kind, payload in rows]

    def _read(self, key: JobKey, offset: int, limit: int) -> list[tuple[str, bytes]]:
        db = self.db
        found = self._key(key)
        if found is None:
            return []
        if offset == 0:  # a one-entry answer is in the row (and the journal table holds none)
            held = db.execute(
                "SELECT answer_kind, answer FROM jobs WHERE key = ? AND user = ? AND id = ?",
                (found, key.user, str(key.id)),
            ).fetchone()
            if held is not None and held[0] is not None:
                return [(held[0], held[1])] if limit > 0 else []
        return db.execute(
            "SELECT kind, payload FROM journal WHERE user = ? AND id = ? AND seq >= ? "
            "ORDER BY seq LIMIT ?",
            (key.user, str(key.id), offset, limit),
        ).fetchall()

    # Lists, recovery, retention

    async def list_records(
        self,
        *,
        user: str | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[JobRecord]:
        where = ["kept = 1"]
        args: list[Any] = []
        if user is not None:
            where.append("user = ?")
            args.append(user)
        if state is not None:
            where.append("state = ?")
            args.append(state.value)
        if name is not None:
            where.append("name = ?")
            args.append(name)
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args.extend([before[0], before[0], before[1]])
        sql = (
            f"SELECT {COLUMNS} FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        rows = await self._submit_read(lambda: self.db.execute(sql, (*args, limit)).fetchall())
        return [record_from_row(row) for row in rows]

    async def recover(self, node: str, now: float) -> list[JobRecord]:
        """The unfinished jobs of `node`, and at the first recovery after the file opened,
        every one it held then: the file has one writer at a time (its lock), so no other
        process runs those. (A server restarted under another port, and so another node
        name, found its jobs of before `queued` for good, and the first retry of each a
        503.) Where there is no lock (no `fcntl`), only those of `node`."""
        before = self._first_key if self._lock is not None else 0
        lost = await self._submit(self._recover, node, now, before)
        self._first_key = 0  # once written: a batch that failed runs again with `before`
        return lost

    def _recover(self, node: str, now: float, before: int) -> list[JobRecord]:
        db = self.db
        where = "state IN ('queued', 'running') AND (node = ? OR key < ?)"
        rows = db.execute(f"SELECT {COLUMNS} FROM jobs WHERE {where}", (node, before)).fetchall()
        db.execute(
            f"UPDATE jobs SET state = 'lost', finished_at = ?, failure = 'unavailable' "
            f"WHERE {where}",
            (now, node, before),
        )
        lost = [record_from_row(row) for row in rows]
        ending = [encode_entry(lost_entry())]
        for record in lost:
            record.state = JobState.LOST
            record.failure = ResponseFailure.UNAVAILABLE
            record.finished_at = now
            self._append(record.key, ending)  # its readers get the lost answer (503)
        return lost

    async def prune(self, *, now: float, retention: float, remember: int) -> int:
        # In small batches, each its own transaction, so requests interleave with pruning.
        changed = 0
        while True:
            done = await self._submit(self._prune_batch, now - retention)
            changed += done
            if done < PRUNE_BATCH:
                break
        # The newest record past the `remember` newest is found once: each batch then reads
        # the index from its start, instead of stepping over `remember` entries again.
        last = await self._submit(self._last_to_forget, remember)
        while last is not None:
            done = await self._submit(self._forget_batch, last)
            changed += done
            if done < PRUNE_BATCH:
                break
        return changed

    # Batches run on the event loop's thread, in the order asked: `_keys` changes here, at
    # the point of the batch where the rows go, so a claim later in the batch sees it.

    def _prune_batch(self, horizon: float) -> int:
        db = self.db
        rows = db.execute(
            "SELECT key, user, id, state FROM jobs "
            "WHERE kept = 1 AND created_at < ? AND finished_at < ? LIMIT ?",
            (horizon, horizon, PRUNE_BATCH),
        ).fetchall()
        for key, user, ident, state in rows:
            db.execute("DELETE FROM journal WHERE user = ? AND id = ?", (user, ident))
            if state == JobState.LOST.value:
                db.execute("DELETE FROM jobs WHERE key = ?", (key,))
                if self._keys.get((user, ident)) == key:
                    self._map((user, ident), None)
            else:
                db.execute(
                    "UPDATE jobs SET kept = 0, answer_kind = NULL, answer = NULL WHERE key = ?",
                    (key,),
                )
        return len(rows)

    def _last_to_forget(self, remember: int) -> tuple[float, int] | None:
        """(finished_at, key) of the newest record without its answer that is forgotten.

        `INDEXED BY`: knowing nothing of how few records a partial index holds, SQLite would
        rather read `jobs_listed` (kept = 0) and sort them.
        """
        row = self.db.execute(
            "SELECT finished_at, key FROM jobs INDEXED BY jobs_forgettable WHERE kept = 0 "
            "ORDER BY finished_at DESC, key DESC LIMIT 1 OFFSET ?",
            (remember,),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def _forget_batch(self, last: tuple[float, int]) -> int:
        db = self.db
        rows = db.execute(
            "SELECT key, user, id FROM jobs INDEXED BY jobs_forgettable "
            "WHERE kept = 0 AND (finished_at, key) <= (?, ?) LIMIT ?",
            (*last, PRUNE_BATCH),
        ).fetchall()
        db.executemany("DELETE FROM jobs WHERE key = ?", [(key,) for key, _, _ in rows])
        for key, user, ident in rows:
            if self._keys.get((user, ident)) == key:
                self._map((user, ident), None)
        return len(rows)


def _nothing() -> None:
    """A statement of no statements: what is asked before it is written once it is done."""


_ALL_KEYS = "SELECT key, user, id FROM jobs"
_BY_KEY = f"SELECT {COLUMNS} FROM jobs WHERE key = ? AND user = ? AND id = ?"
"""A record by its key; the owner is checked too, so a stray row is never someone's record."""


def _lock_for_writing(path: Path) -> IO[bytes] | None:
    """Lock `path`.lock so that one process at a time writes the file (else GearjobsError).

    Two writers would each decide claims in memory, and one id could run twice. The lock
    goes with the process (kill -9 included). Where `fcntl` is missing (Windows) there is no
    lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    try:
        lock = open(f"{path}.lock", "ab")  # noqa: SIM115 - held open until close()
    except OSError as exc:
        raise GearjobsError(f"cannot open the SQLite store at {path}: {exc}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise GearjobsError(
            f"the SQLite store at {path} is in use by another process or store: a file has "
            "one writer (give each server a file of its own, or share a Redis store)"
        ) from None
    return lock


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Copy a `jobs` table of an earlier schema (no `key`) into the current one."""
    db.execute("BEGIN IMMEDIATE")  # decided under the lock: another opener may be first
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if not columns or "key" in columns:
            db.execute("COMMIT")
            return
        logger.warning("copying the jobs of %s into the current schema (once)", path)
        for column, kind in (("answer_kind", "TEXT"), ("answer", "BLOB")):
            if column not in columns:  # the first schema held every answer in `journal`
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        db.execute("ALTER TABLE jobs RENAME TO jobs_before")
        for index in (
            "jobs_created",
            "jobs_listed",
            "jobs_finished",
            "jobs_forgettable",
            "jobs_node",
            "jobs_unfinished",
        ):
            db.execute(f"DROP INDEX IF EXISTS {index}")
        db.execute(JOBS_TABLE)
        db.execute(
            f"INSERT INTO jobs ({COLUMNS}, answer_kind, answer) "
            f"SELECT {COLUMNS}, answer_kind, answer FROM jobs_before ORDER BY created_at"
        )
        db.execute("DROP TABLE jobs_before")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


_MARKS = ", ".join("?" * len(COLUMNS.split(",")))
_INSERT = f"INSERT OR REPLACE INTO jobs (key, {COLUMNS}) VALUES (?, {_MARKS})"
_INSERT_WITH_ANSWER = (
    f"INSERT OR REPLACE INTO jobs (key, {COLUMNS}, answer_kind, answer) VALUES (?, {_MARKS}, ?, ?)"
)
_INSERT_NEW_WITH_ANSWER = _INSERT_WITH_ANSWER.replace("INSERT OR REPLACE", "INSERT", 1)
_REPLACING = {_INSERT_NEW_WITH_ANSWER: _INSERT_WITH_ANSWER}
"""What a statement of a group is, row by row, when the group's statement failed."""
_UPSERT = (
    f"INSERT INTO jobs (key, {COLUMNS}) VALUES (?, {_MARKS}) ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in COLUMNS.split(",")[2:])
)


Row = tuple[Any, ...]


class _Rows:
    """Rows queued for one statement, each with the future of its own outcome.

    Claims have no futures (nobody waits for them; a failed one is logged) but keep their
    keys, to skip those whose answer was queued after them.
    """

    __slots__ = ("claims", "futures", "keys", "loop", "rows", "sql")

    def __init__(self, sql: str, loop: asyncio.AbstractEventLoop, *, claims: bool) -> None:
        self.sql = sql
        self.loop = loop
        self.claims = claims
        self.rows: list[Row] = []
        self.keys: list[tuple[str, str]] = []
        self.futures: list[asyncio.Future[None]] = []

    def add(self, row: Row) -> asyncio.Future[None]:
        """Queue an answer's row; the future says when it is written."""
        self.rows.append(row)
        future: asyncio.Future[None] = self.loop.create_future()
        self.futures.append(future)
        return future

    def add_claim(self, key: tuple[str, str], row: Row) -> None:
        """Queue a claim's row (nobody waits for it)."""
        self.rows.append(row)
        self.keys.append(key)

    def settle(self, written: asyncio.Future[list[BaseException | None]]) -> None:
        """Hand each row its outcome once the batch has run (or failed as a whole)."""
        if written.cancelled():
            outcomes: list[BaseException | None] = [GearjobsError("the write was cancelled")]
        elif (error := written.exception()) is not None:
            outcomes = [error]
        else:
            outcomes = written.result()
        if self.claims:
            for outcome in outcomes:
                if outcome is not None:
                    logger.error("claims could not be written to the SQLite store: %s", outcome)
            return
        if len(outcomes) != len(self.futures):  # one error: the batch failed as a whole
            outcomes = outcomes * len(self.futures)
        for future, outcome in zip(self.futures, outcomes, strict=True):
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)


def _log_failed_checkpoint(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("a checkpoint of the SQLite store failed", exc_info=future.exception())
