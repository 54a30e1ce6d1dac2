"""JobHandle: what a dispatch returns, to follow and await one job's answer."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Generator
from typing import Any

from gearjobs.dispatcher._journal import Journal
from gearjobs.dispatcher._pump import ResponsePump
from gearjobs.jobs import GearjobsError, JobContext, Response
from gearjobs.store import Entry, JobKey, JobRecord, Store, is_terminal

__all__ = ("JobHandle",)


class JobHandle:
    """One client's view of a job: its record, its journal from the start, and its end.

    `joined` is False only for the dispatch that started the job. Awaiting the handle (or
    `wait()`) gives the journal's terminal entry.
    """

    __slots__ = ("_journal", "_store", "joined", "record")

    def __init__(
        self,
        record: JobRecord,
        *,
        journal: Journal | None,
        store: Store,
        joined: bool,
    ) -> None:
        self.record = record
        self.joined = joined
        self._journal = journal
        self._store = store

    @property
    def key(self) -> JobKey:
        """The job's user and request id."""
        return self.record.key

    @property
    def context(self) -> JobContext:
        """The job's request id and user."""
        return JobContext(self.record.key.id, self.record.key.user)

    @property
    def live(self) -> bool:
        """True when this process runs the job (its journal is in memory)."""
        return self._journal is not None

    def follow(self, offset: int = 0) -> AsyncGenerator[Entry, None]:
        """The answer from entry `offset`: what is recorded, then the rest live, to the end."""
        if self._journal is not None:
            return self._journal.follow(offset)
        return self._store.follow(self.record.key, offset)

    def follow_batches(self, offset: int = 0) -> AsyncGenerator[list[Entry], None]:
        """Like `follow`, but what is available at once comes as one list (fewer writes)."""
        if self._journal is not None:
            return self._journal.follow_batches(offset)
        return self._store.follow_batches(self.record.key, offset)

    def first(self) -> Awaitable[Entry | None]:
        """The answer's first entry, once written; None if the stored journal is empty."""
        if self._journal is not None:
            return self._journal.first()
        return self._stored_first()

    async def _stored_first(self) -> Entry | None:
        # One entry, not a page (a page of a long stream is most of it); an empty journal
        # (the job runs elsewhere, and has written nothing yet) is followed until it writes.
        written = await self._store.read(self.record.key, 0, 1)
        if written:
            return written[0]
        batches = self._store.follow_batches(self.record.key)
        try:
            async for batch in batches:
                if batch:
                    return batch[0]
            return None
        finally:
            await batches.aclose()

    async def wait(self) -> Entry:
        """The terminal entry of the journal, once the job has finished."""
        if self._journal is not None:
            return await self._journal.wait()
        last: Entry | None = None
        async for entry in self._store.follow(self.record.key):
            last = entry
        if last is None or not is_terminal(last):
            raise GearjobsError(f"the journal of {self.record.key} ended without an answer")
        return last

    def __await__(self) -> Generator[Any, None, Entry]:
        if self._journal is not None:
            return self._journal.wait().__await__()
        return self.wait().__await__()

    async def write_to(self, response: Response) -> Entry | None:
        """Replay the whole answer into `response` and return the terminal entry."""
        pump = ResponsePump(response)
        last: Entry | None = None
        async for entry in self.follow():
            pump(entry)
            last = entry
        return last
