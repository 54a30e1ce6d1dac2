"""The store interface: job records and journals, keyed by user and request id."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gearjobs.jobs import GearjobsError, ResponseFailure, SimpleError
from gearjobs.store._records import Entry, Failed, JobKey, JobRecord, JobState, is_terminal

__all__ = (
    "CLAIMED",
    "LOST_MESSAGE",
    "ClaimResult",
    "NameTaken",
    "Store",
    "StoreUnavailable",
    "WriteRefused",
    "lost_entry",
    "not_yet_written",
)

LOST_MESSAGE = (
    "The server running this job stopped before it finished; retry the request to run it again."
)


def lost_entry() -> Failed:
    """The entry that ends the journal of a lost job: clients get 503 and retry."""
    return Failed(ResponseFailure.UNAVAILABLE, LOST_MESSAGE, {"state": "lost"})


class StoreUnavailable(SimpleError):
    """The store cannot be reached now (UNAVAILABLE: the client should retry shortly)."""

    def __init__(self, reason: str) -> None:
        super().__init__(ResponseFailure.UNAVAILABLE, reason)


class NameTaken(GearjobsError):
    """Another live process serves under this node name on the same shared store."""


class WriteRefused(StoreUnavailable):
    """The store refused a job's write for good: the record was marked lost or claimed again
    (another run owns it now), or the entries would leave a gap in its journal. Trying the
    same write again cannot help."""


E = TypeVar("E")


def not_yet_written(entries: Sequence[E], start: int | None, length: int) -> Sequence[E]:
    """The part of `entries` (to go at journal position `start`) that a journal of `length`
    entries does not hold yet: all of them without `start`; WriteRefused for a gap."""
    if start is None or start == length:
        return entries
    if start > length:
        raise WriteRefused(
            f"the journal holds {length} entries, and these were to go at position {start}: "
            "an earlier write is missing"
        )
    return entries[length - start :]


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The answer to a claim: `claimed`, or the record that already holds the id."""

    claimed: bool
    existing: JobRecord | None = None


CLAIMED: ClaimResult = ClaimResult(True)
"""The answer to every claim that was won (immutable, so one serves all)."""


class Store(abc.ABC):
    """Where job records and their journals live.

    A record is created by an atomic `claim` (one claimant wins an id; the others get the
    record that holds it). A finished job's journal and final record are written together by
    `finish`. Stores whose journals must be visible to other processes while a job runs
    (`live_journal`) also take `append` calls as the job writes.

    Retention: `prune` drops the answers of jobs finished longer ago than `retention` seconds
    (their ids stay remembered: records with `kept=False`), and forgets all but the newest
    `remember` of those ids.
    """

    live_journal: bool = False
    """True when journals are appended while jobs run (joins from other processes follow them)."""
    single_user: bool = False
    """True when one dispatcher at a time may use the store (memory, SQLite: the claims are
    decided in this process). Such a dispatcher knows every job that runs: an unfinished
    record it does not run is lost. `attach` refuses a second dispatcher."""
    _user: object = None

    def attach(self, user: object) -> None:
        """Become `user`'s store; GearjobsError if another user holds a single-user store."""
        if self.single_user and self._user is not None and self._user is not user:
            raise GearjobsError(
                f"{self!r} is in use by another dispatcher: this store has one user at a time"
            )
        self._user = user

    def detach(self, user: object) -> None:
        """`user` is done with the store."""
        if self._user is user:
            self._user = None

    keeps_objects: bool = False
    """True when data that is not JSON can be kept (as the object itself); otherwise a job
    whose data is not JSON fails with ERROR as it writes it, so that no answer goes out that
    could not be recorded."""

    def check_ready(self, node: str | None = None) -> None:  # noqa: B027 - optional hook
        """Raise GearjobsError now if this store cannot be served from (a SQLite file that
        another process writes, a Redis that does not answer, a node name that a live process
        holds), so that a server can say so in one line before it starts. It opens nothing
        that `open` needs; a name it takes, `take_name` confirms."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store for use (create tables, connect)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the store's resources."""

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise StoreUnavailable when the store cannot be reached."""

    async def take_name(self, node: str) -> None:  # noqa: B027 - optional hook
        """Hold `node` as the name of this process while it runs, before `recover` marks that
        name's leftovers lost. A store that several processes share raises NameTaken when a
        live process holds the name (its running jobs are not leftovers)."""

    async def release_name(self, node: str) -> None:  # noqa: B027 - optional hook
        """Let `node` go (a clean stop): another process may take it at once."""

    @abc.abstractmethod
    async def claim(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult:
        """Create `record` unless its id is held.

        An id is free when no record names it, when its record is LOST (for the same request
        fingerprint: an id belongs to one request), or when `replace_run`
        equals the run of its finished record (a join asked for a re-run). Claiming a held id
        replaces its record and clears its journal; `record.run` is then set one past the old.
        """

    @abc.abstractmethod
    async def get(self, key: JobKey) -> JobRecord | None:
        """The record of `key`, or None when the id is not remembered."""

    @abc.abstractmethod
    async def update(self, record: JobRecord) -> None:
        """Write a changed record (for example when it starts running)."""

    @abc.abstractmethod
    async def append(
        self, key: JobKey, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        """Append entries to the journal of a running job (live journals only).

        `start` is the journal position of `entries[0]`. A write whose outcome the caller did
        not learn (a store that stopped answering) may still have been made; the caller then
        sends the same entries again from the same position, and those already in the journal
        are not written twice. A `start` past the end of the journal (a gap: an earlier write
        is missing) is refused with WriteRefused. Without `start`, the entries go at the end.
        """

    @abc.abstractmethod
    async def finish(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        """Write the final record and the rest of its journal, in one step.

        `start` is the journal position of `entries[0]`, as for `append`: a finish tried again
        after an unknown outcome leaves one copy of each entry.
        """

    def claim_now(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult | None:
        """`claim` when the store can decide without waiting (else None: await `claim`).

        Stores that keep what they need in memory answer here and spare the caller a wait.
        """
        return None

    def finish_soon(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> asyncio.Future[None]:
        """Start `finish` now and return its outcome to await.

        What a store does here before it returns is ordered before any later call, so a
        read asked after this sees the write. The default starts `finish` as a task.
        """
        return asyncio.ensure_future(self.finish(record, entries, start=start))

    async def claims_written(self) -> None:  # noqa: B027 - optional hook
        """Wait until every claim won so far is written (a store that writes claims behind
        their win; the others have written them already)."""

    def hurry(self) -> None:  # noqa: B027 - optional hook
        """Someone waits for the writes asked so far: make them now rather than hold them
        back to share a commit with later ones."""

    @abc.abstractmethod
    async def read(self, key: JobKey, offset: int = 0, limit: int = 1024) -> list[Entry]:
        """Up to `limit` journal entries of `key` from position `offset`."""

    async def follow(
        self, key: JobKey, offset: int = 0, *, poll: float = 0.05
    ) -> AsyncGenerator[Entry, None]:
        """The journal of `key` from `offset`, following it until its terminal entry."""
        async for batch in self.follow_batches(key, offset, poll=poll):
            for entry in batch:
                yield entry

    async def follow_batches(
        self, key: JobKey, offset: int = 0, *, poll: float = 0.05
    ) -> AsyncGenerator[list[Entry], None]:
        """Like `follow`, a page of entries at a time.

        This default pages through `read` and polls while the job runs elsewhere; stores that
        can wait for new entries (Redis) override it.
        """
        delay = poll
        while True:
            page = await self.read(key, offset)
            if page:
                for i, entry in enumerate(page):
                    if is_terminal(entry):
                        yield page[: i + 1]
                        return
                yield page
                offset += len(page)
                delay = poll
                continue
            record = await self.get(key)
            if record is None or not record.kept:
                return
            if record.state.finished:
                tail = await self.read(key, offset)
                if tail:
                    yield tail
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    @abc.abstractmethod
    async def list_records(
        self,
        *,
        user: str | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[JobRecord]:
        """Kept records, newest first; `before` is the (created_at, id) of the last one seen."""

    @abc.abstractmethod
    async def recover(self, node: str, now: float) -> list[JobRecord]:
        """Mark the queued and running jobs of `node` LOST at `now` (it restarted); return them."""

    @abc.abstractmethod
    async def prune(self, *, now: float, retention: float, remember: int) -> int:
        """Apply retention; return how many records changed or went."""
