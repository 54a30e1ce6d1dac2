"""Journal entries and records as bytes, for stores outside this process (SQLite, Redis)."""

from __future__ import annotations

import json

from gearjobs._json import dumps
from gearjobs.jobs import GearjobsError, ResponseFailure, ResponseSuccess
from gearjobs.store._records import (
    ENDED,
    Body,
    Chunk,
    Entry,
    Event,
    Failed,
    Succeeded,
)

__all__ = ("decode_entry", "encode_entry")

# One letter a kind: the payload of a chunk or an event is stored as the bytes a client gets.
SUCCEEDED, CHUNK, EVENT, ENDED_KIND, FAILED = "s", "c", "e", "n", "f"


def encode_entry(entry: Entry) -> tuple[str, bytes]:
    """The (kind, payload) of an entry. Data, pending values and events must be JSON values."""
    try:
        if isinstance(entry, Chunk):
            return CHUNK, entry.data
        if isinstance(entry, Event):
            return EVENT, entry.line()
        if isinstance(entry, Succeeded):
            payload = {"k": entry.kind.value, "b": entry.body.value, "p": dict(entry.pending)}
            if entry.body is Body.DATA:
                payload["d"] = entry.data
            return SUCCEEDED, dumps(payload)
        if isinstance(entry, Failed):
            return FAILED, dumps({"f": entry.failure.value, "m": entry.message, "d": entry.data})
    except (TypeError, ValueError) as exc:
        raise GearjobsError(f"journal entry is not JSON-serializable: {exc}") from exc
    return ENDED_KIND, b""


def decode_entry(kind: str, payload: bytes) -> Entry:
    """The entry stored as (kind, payload)."""
    if kind == CHUNK:
        return Chunk(bytes(payload))
    if kind == EVENT:
        return Event(line=bytes(payload))
    if kind == SUCCEEDED:
        value = json.loads(payload)
        return Succeeded(ResponseSuccess(value["k"]), Body(value["b"]), value["p"], value.get("d"))
    if kind == FAILED:
        value = json.loads(payload)
        return Failed(ResponseFailure(value["f"]), value["m"], value["d"])
    if kind == ENDED_KIND:
        return ENDED
    raise GearjobsError(f"unknown journal entry kind {kind!r}")
