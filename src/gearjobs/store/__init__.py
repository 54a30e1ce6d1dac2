"""Stores: where job records and journals live (memory, SQLite, Redis)."""

from gearjobs.store._base import (
    LOST_MESSAGE,
    ClaimResult,
    NameTaken,
    Store,
    StoreUnavailable,
    WriteRefused,
    lost_entry,
)
from gearjobs.store._codec import EntryNotJSON, decode_entry, encode_entry
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
from gearjobs.store._redis import RedisStore
from gearjobs.store._sqlite import SQLiteStore
from gearjobs.store._url import redacted, store_from_url

__all__ = (
    "ENDED",
    "EntryNotJSON",
    "LOST_MESSAGE",
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
    "NameTaken",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreUnavailable",
    "WriteRefused",
    "Succeeded",
    "decode_entry",
    "encode_entry",
    "is_terminal",
    "lost_entry",
    "redacted",
    "store_from_url",
)
