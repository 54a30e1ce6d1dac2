"""Stores: where job records and journals live (memory, SQLite, Redis)."""

from gearjobs.store._base import ClaimResult, Store
from gearjobs.store._memory import MemoryStore
from gearjobs.store._records import (
    ENDED,
    Body,
    Chunk,
    Ended,
    Entry,
    Event,
    Failed,
    JobKey,
    JobRecord,
    JobState,
    Succeeded,
    is_terminal,
)

__all__ = (
    "ENDED",
    "Body",
    "Chunk",
    "ClaimResult",
    "Ended",
    "Entry",
    "Event",
    "Failed",
    "JobKey",
    "JobRecord",
    "JobState",
    "MemoryStore",
    "Store",
    "Succeeded",
    "is_terminal",
)
