"""The in-memory store: for tests, the in-process API and throwaway servers."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable, Sequence
from typing import Any

from gearjobs.jobs import GearjobsError, ResponseFailure
from gearjobs.store._base import CLAIMED, ClaimResult, Store, lost_entry, not_yet_written
from gearjobs.store._codec import decode_entry, encode_entry, record_from_row, record_row
from gearjobs.store._records import Entry, JobKey, JobRecord, JobState

__all__ = ("MemoryStore",)

Row = tuple[Any, ...]
Item = tuple[str, bytes] | Entry
"""A journal entry as (kind, bytes), or as the entry itself when its values are not JSON."""

# Positions in a record's row (see `record_row`).
_USER, _ID, _NAME, _STATE, _NODE, _CREATED, _FINISHED, _KEPT = 0, 1, 2, 4, 6, 7, 9, 13


def _key(key: JobKey) -> tuple[str, str]:
    return key.user, str(key.id)


def _encode(entries: Iterable[Entry]) -> tuple[Item, ...]:
    items: list[Item] = []
    for entry in entries:
        try:
            items.append(encode_entry(entry))
        except GearjobsError:  # not JSON: kept as the object the job wrote
            items.append(entry)
    return tuple(items)


def _decode(item: Item) -> Entry:
    return decode_entry(*item) if isinstance(item, tuple) else item


class MemoryStore(Store):
    """Keeps records and journals in dictionaries of this process, as plain values.

    A record is kept as a tuple of strings and numbers, a journal as a tuple of its entries'
    (kind, bytes) encodings — values that Python's cyclic garbage collector does not track.
    Kept as objects, a day of finished jobs made every full collection walk millions of them:
    pauses of most of a second under load. The bytes of a chunk or an event are the job's own
    (no copies: a finished job's output is held once, however many clients replay it). An
    entry whose values are not JSON is kept as the object the job wrote. Reads decode anew, as
    from the other stores. One dispatcher uses a memory store (as one process writes a SQLite
    file): a job it does not run, whose record is unfinished, is taken for lost.
    """

    keeps_objects = True
    single_user = True

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], Row] = {}
        self._journals: dict[tuple[str, str], tuple[Item, ...]] = {}
        self._written: asyncio.Future[None] | None = None

    async def claim(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult:
        return self.claim_now(record, replace_run=replace_run)

    def claim_now(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult:
        key = _key(record.key)
        row = self._records.get(key)
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
        self._records[key] = record_row(record)
        self._journals[key] = ()
        return CLAIMED

    async def get(self, key: JobKey) -> JobRecord | None:
        row = self._records.get(_key(key))
        return None if row is None else record_from_row(row)

    async def update(self, record: JobRecord) -> None:
        self._records[_key(record.key)] = record_row(record)

    async def append(
        self, key: JobKey, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        self._append(_key(key), entries, start)

    def _append(self, key: tuple[str, str], entries: Sequence[Entry], start: int | None) -> None:
        journal = self._journals.get(key, ())
        self._journals[key] = journal + _encode(not_yet_written(entries, start, len(journal)))

    async def finish(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        self._finish(record, entries, start)

    def finish_soon(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> asyncio.Future[None]:
        self._finish(record, entries, start)
        # Written already: one finished future (of the running loop) serves every call.
        loop = asyncio.get_running_loop()
        done = self._written
        if done is None or done.get_loop() is not loop:
            done = self._written = loop.create_future()
            done.set_result(None)
        return done

    def _finish(self, record: JobRecord, entries: Sequence[Entry], start: int | None) -> None:
        key = _key(record.key)
        self._append(key, entries, start)  # first: a gap refuses the whole write
        self._records[key] = record_row(record)

    async def read(self, key: JobKey, offset: int = 0, limit: int = 1024) -> list[Entry]:
        items = self._journals.get(_key(key), ())
        return [_decode(item) for item in items[offset : offset + limit]]

    async def list_records(
        self,
        *,
        user: str | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[JobRecord]:
        found = [
            row
            for row in self._records.values()
            if row[_KEPT]
            and (user is None or row[_USER] == user)
            and (state is None or row[_STATE] == state.value)
            and (name is None or row[_NAME] == name)
            and (before is None or (row[_CREATED], row[_ID]) < before)
        ]
        newest = heapq.nlargest(limit, found, key=lambda row: (row[_CREATED], row[_ID]))
        return [record_from_row(row) for row in newest]

    async def recover(self, node: str, now: float) -> list[JobRecord]:
        lost = []
        for key, row in list(self._records.items()):
            if row[_NODE] == node and not JobState(row[_STATE]).finished:
                record = record_from_row(row)
                record.state = JobState.LOST
                record.failure = ResponseFailure.UNAVAILABLE
                record.finished_at = now
                self._records[key] = record_row(record)
                self._append(key, [lost_entry()], None)
                lost.append(record)
        return lost

    async def prune(self, *, now: float, retention: float, remember: int) -> int:
        changed = 0
        horizon = now - retention
        for key, row in list(self._records.items()):
            finished_at = row[_FINISHED]
            if row[_KEPT] and finished_at is not None and finished_at < horizon:
                if row[_STATE] == JobState.LOST.value:
                    del self._records[key]
                else:
                    record = record_from_row(row)
                    record.kept = False
                    self._records[key] = record_row(record)
                self._journals.pop(key, None)
                changed += 1
        remembered = sorted(
            (item for item in self._records.items() if not item[1][_KEPT]),
            key=lambda item: item[1][_FINISHED] or 0.0,
            reverse=True,
        )
        for key, _ in remembered[remember:]:
            del self._records[key]
            changed += 1
        return changed
