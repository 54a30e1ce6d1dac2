"""What a store keeps: job records, and the journal entries of each job's answer."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gearjobs._json import dumps_line
from gearjobs.jobs import GearjobsError, RequestIdentifier, ResponseFailure, ResponseSuccess

__all__ = (
    "ENDED",
    "Body",
    "Chunk",
    "Ended",
    "Entry",
    "Event",
    "Failed",
    "JobKey",
    "JobRecord",
    "JobState",
    "Succeeded",
    "is_terminal",
)


class JobState(enum.Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"
    """Its server stopped while it was queued or running; a retry of its id runs it again."""

    @property
    def finished(self) -> bool:
        """True for succeeded, failed and lost."""
        return self in _FINISHED


_FINISHED: Final = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.LOST})


class Body(enum.Enum):
    """What follows a success in the journal."""

    NONE = "none"
    DATA = "data"
    TEXT = "text"
    EVENTS = "events"


class JobKey:
    """A job's identity: request ids are scoped by user. Immutable; hashed once."""

    __slots__ = ("_hash", "id", "user")

    user: str
    id: RequestIdentifier
    _hash: int

    def __init__(self, user: str, id: RequestIdentifier) -> None:
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "_hash", hash((user, id)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("JobKey is immutable")

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, JobKey):
            return NotImplemented
        return self._hash == other._hash and self.id == other.id and self.user == other.user

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"JobKey(user={self.user!r}, id={self.id!r})"

    def __str__(self) -> str:
        return f"{self.user}/{self.id}"


# Journal entries. A journal is: one Succeeded (with its pending values), then for a stream
# any number of Chunk or Event entries and an Ended; or a single Failed. A Failed after a
# stream began is the stream's error marker.


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The job succeeded; `body` says what follows (data is carried here)."""

    kind: ResponseSuccess
    body: Body
    pending: Mapping[str, Any] = field(default_factory=dict)
    data: Any = None
    encoded: bytes | None = field(default=None, compare=False, repr=False)
    """The data as JSON, when it was encoded as the job wrote it (stores and answers reuse
    it rather than encode the data again)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a text stream."""

    data: bytes


class Event:
    """One structured event of a stream, kept as its line of JSON.

    It is encoded once, when the job writes it: a journal holds the bytes clients receive
    (about a tenth of the memory of the decoded value), a job that changes the value afterwards
    changes nothing, and a value that is not JSON fails in the job that wrote it.
    """

    __slots__ = ("_line",)

    def __init__(self, value: Any = None, line: bytes | None = None) -> None:
        if line is None:
            try:
                line = dumps_line(value)
            except (TypeError, ValueError) as exc:
                raise GearjobsError(f"an event must be a JSON value: {exc}") from exc
        self._line = line

    @property
    def value(self) -> Any:
        """The event, decoded."""
        return json.loads(self._line)

    def line(self) -> bytes:
        """The event as one line of JSON, newline included."""
        return self._line

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self._line == other._line

    def __hash__(self) -> int:
        return hash(self._line)

    def __repr__(self) -> str:
        return f"Event({self.value!r})"


@dataclass(frozen=True, slots=True)
class Ended:
    """The stream ended normally."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The job failed (or, after a stream began, the stream ended with this error)."""

    failure: ResponseFailure
    message: str
    data: Any = None


Entry = Succeeded | Chunk | Event | Ended | Failed

ENDED: Final = Ended()


def is_terminal(entry: Entry) -> bool:
    """True for the last entry of a journal."""
    if isinstance(entry, Succeeded):
        return entry.body is Body.NONE or entry.body is Body.DATA
    return isinstance(entry, Ended | Failed)


@dataclass(slots=True)
class JobRecord:
    """What a store knows of one job."""

    key: JobKey
    name: str
    fingerprint: str
    state: JobState = JobState.QUEUED
    run: int = 1
    """Counts the runs of this id: a lost job, or a join that asks for a re-run, runs again."""
    node: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    success: ResponseSuccess | None = None
    body: Body | None = None
    failure: ResponseFailure | None = None
    kept: bool = True
    """False once retention has dropped the record's answer; the id is still remembered."""

    def copy(self) -> JobRecord:
        """A copy that can change without changing this one (faster than dataclasses.replace)."""
        return JobRecord(
            self.key,
            self.name,
            self.fingerprint,
            self.state,
            self.run,
            self.node,
            self.created_at,
            self.started_at,
            self.finished_at,
            self.success,
            self.body,
            self.failure,
            self.kept,
        )

    def outcome_from(self, terminal: Entry, succeeded: Succeeded | None) -> None:
        """Set state and outcome from the journal's Succeeded entry and its last entry."""
        if succeeded is not None:
            self.success = succeeded.kind
            self.body = succeeded.body
        if isinstance(terminal, Failed):
            self.failure = terminal.failure
            self.state = JobState.FAILED
        else:
            self.state = JobState.SUCCEEDED
