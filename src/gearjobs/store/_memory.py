"""The in-memory store: for tests, the in-process API and throwaway servers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gearjobs.jobs import ResponseFailure
from gearjobs.store._base import ClaimResult, Store, lost_entry
from gearjobs.store._records import Entry, JobKey, JobRecord, JobState

__all__ = ("MemoryStore",)


class MemoryStore(Store):
    """Keeps records and journals in dictionaries of this process.

    Journal entries are kept as the objects the job wrote (no copies): a finished job's output
    is held once, however many clients replay it.
    """

    def __init__(self) -> None:
        self._records: dict[JobKey, JobRecord] = {}
        self._journals: dict[JobKey, list[Entry]] = {}

    async def claim(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult:
        return self.claim_now(record, replace_run=replace_run)

    def claim_now(self, record: JobRecord, *, replace_run: int | None = None) -> ClaimResult:
        existing = self._records.get(record.key)
        if existing is not None:
            free = (
                existing.state is JobState.LOST and existing.fingerprint == record.fingerprint
            ) or (
                replace_run is not None and existing.run == replace_run and existing.state.finished
            )
            if not free:
                return ClaimResult(False, existing.copy())
            record.run = existing.run + 1
        self._records[record.key] = record.copy()
        self._journals[record.key] = []
        return ClaimResult(True)

    async def get(self, key: JobKey) -> JobRecord | None:
        record = self._records.get(key)
        return None if record is None else record.copy()

    async def update(self, record: JobRecord) -> None:
        self._records[record.key] = record.copy()

    async def append(self, key: JobKey, entries: Sequence[Entry]) -> None:
        self._journals.setdefault(key, []).extend(entries)

    async def finish(self, record: JobRecord, entries: Sequence[Entry]) -> None:
        self._finish(record, entries)

    def finish_soon(self, record: JobRecord, entries: Sequence[Entry]) -> asyncio.Future[None]:
        self._finish(record, entries)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def _finish(self, record: JobRecord, entries: Sequence[Entry]) -> None:
        self._records[record.key] = record.copy()
        self._journals.setdefault(record.key, []).extend(entries)

    async def read(self, key: JobKey, offset: int = 0, limit: int = 1024) -> list[Entry]:
        return self._journals.get(key, [])[offset : offset + limit]

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
            r
            for r in self._records.values()
            if r.kept
            and (user is None or r.key.user == user)
            and (state is None or r.state is state)
            and (name is None or r.name == name)
            and (before is None or (r.created_at, str(r.key.id)) < before)
        ]
        found.sort(key=lambda r: (r.created_at, str(r.key.id)), reverse=True)
        return [r.copy() for r in found[:limit]]

    async def recover(self, node: str, now: float) -> list[JobRecord]:
        lost = []
        for record in self._records.values():
            if record.node == node and not record.state.finished:
                record.state = JobState.LOST
                record.failure = ResponseFailure.UNAVAILABLE
                record.finished_at = now
                self._journals.setdefault(record.key, []).append(lost_entry())
                lost.append(record.copy())
        return lost

    async def prune(self, *, now: float, retention: float, remember: int) -> int:
        changed = 0
        horizon = now - retention
        for key, record in list(self._records.items()):
            if record.kept and record.finished_at is not None and record.finished_at < horizon:
                if record.state is JobState.LOST:
                    del self._records[key]
                else:
                    record.kept = False
                self._journals.pop(key, None)
                changed += 1
        remembered = sorted(
            (r for r in self._records.values() if not r.kept),
            key=lambda r: r.finished_at or 0.0,
            reverse=True,
        )
        for record in remembered[remember:]:
            del self._records[record.key]
            changed += 1
        return changed
