"""Journal entries as bytes and records as plain values, for keeping outside live objects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gearjobs._json import dumps
from gearjobs.jobs import GearjobsError, RequestIdentifier, ResponseFailure, ResponseSuccess
from gearjobs.store._records import (
    ENDED,
    Body,
    Chunk,
    Entry,
    Event,
    Failed,
    JobKey,
    JobRecord,
    JobState,
    Succeeded,
)

__all__ = ("EntryNotJSON", "decode_entry", "encode_entry", "record_from_row", "record_row")


class EntryNotJSON(GearjobsError):
    """A journal entry whose values are not JSON: a store that keeps JSON cannot hold it."""


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
            payload = {"k": entry.kind._value_, "b": entry.body._value_, "p": dict(entry.pending)}
            if entry.body is not Body.DATA:
                return SUCCEEDED, dumps(payload)
            if entry.encoded is not None:  # the same value as with "d" in the payload
                return SUCCEEDED, b'%s,"d":%s}' % (dumps(payload)[:-1], entry.encoded)
            payload["d"] = entry.data
            return SUCCEEDED, dumps(payload)
        if isinstance(entry, Failed):
            return FAILED, dumps({"f": entry.failure._value_, "m": entry.message, "d": entry.data})
    except (TypeError, ValueError) as exc:
        raise EntryNotJSON(f"journal entry is not JSON-serializable: {exc}") from exc
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


def record_row(record: JobRecord) -> tuple[Any, ...]:
    """The record as a tuple of strings, numbers and None (the columns of SQLite's `jobs`).

    Enum values are read as `_value_` (the member's own attribute) here and in
    `encode_entry`: `.value` goes through a Python-level descriptor, and these run for every
    job.
    """
    return (
        record.key.user,
        str(record.key.id),
        record.name,
        record.fingerprint,
        record.state._value_,
        record.run,
        record.node,
        record.created_at,
        record.started_at,
        record.finished_at,
        None if record.success is None else record.success._value_,
        None if record.body is None else record.body._value_,
        None if record.failure is None else record.failure._value_,
        int(record.kept),
    )


def record_from_row(row: Sequence[Any]) -> JobRecord:
    """The record that `record_row` gave `row`."""
    return JobRecord(
        JobKey(row[0], RequestIdentifier.parse(row[1])),
        row[2],
        row[3],
        JobState(row[4]),
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        None if row[10] is None else ResponseSuccess(row[10]),
        None if row[11] is None else Body(row[11]),
        None if row[12] is None else ResponseFailure(row[12]),
        bool(row[13]),
    )
