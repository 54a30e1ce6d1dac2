"""Jobs: units of work, their context, and how they take part in joins."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gearjobs.jobs._identifier import RequestIdentifier
from gearjobs.jobs._response import Response

__all__ = (
    "ANONYMOUS",
    "Job",
    "JobContext",
    "JobFunction",
    "Join",
    "JoinAction",
    "fingerprint_of",
    "is_async_job",
    "is_fast",
)

ANONYMOUS = "anonymous"
"""The user of a request that names none."""


@runtime_checkable
class Job(Protocol):
    """A unit of work: it executes and writes its answer to a Response.

    `execute` may be a plain method (the dispatcher runs it in a worker thread) or `async def`
    (run on the event loop). A job whose `fast` attribute is true goes to the fast queue.
    """

    def execute(self, response: Response) -> Awaitable[None] | None:
        """Do the work and write the answer to `response`."""


class JoinAction(enum.Enum):
    """What `Join.join` decides for a request whose id already names a job."""

    JOIN = "join"
    """Receive the existing job's answer (the usual case)."""
    RERUN = "rerun"
    """Run the new job under the same id (only for a finished job)."""


@runtime_checkable
class Join(Protocol):
    """A job that wants a say when a request arrives for an id that is running or finished.

    The dispatcher calls `join` on the job built from the new request. `other` is the job that
    holds the id when this process still has it (else None); `done` is True when that job has
    finished. Return JOIN to receive its answer, RERUN (finished jobs only) to run anew, or
    raise a JobError to refuse the request.
    """

    def join(self, other: Job | None, done: bool) -> JoinAction:
        """Decide what a repeated request does."""


@dataclass(frozen=True, slots=True)
class JobContext:
    """Who asked for a job: its request identifier and the user it belongs to."""

    id: RequestIdentifier
    user: str = ANONYMOUS


class JobFunction:
    """Makes a callable taking a Response into a Job (plain or `async def`)."""

    __slots__ = ("fast", "func", "name")

    def __init__(
        self,
        func: Callable[[Response], Awaitable[None] | None],
        *,
        fast: bool = False,
        name: str | None = None,
    ) -> None:
        self.func = func
        self.fast = fast
        self.name = name or getattr(func, "__qualname__", type(func).__name__)

    def execute(self, response: Response) -> Awaitable[None] | None:
        return self.func(response)

    def fingerprint(self) -> str:
        """Jobs made from the same function are the same request."""
        return f"function:{self.name}"

    def __repr__(self) -> str:
        return f"JobFunction({self.name!r}, fast={self.fast})"


def is_fast(job: object) -> bool:
    """True when the job asks for the fast queue (a true `fast` attribute)."""
    return bool(getattr(job, "fast", False))


_ASYNC_TYPES: dict[type, bool] = {}


def is_async_job(job: Job) -> bool:
    """True when the job's execute is a coroutine function (runs on the event loop)."""
    if isinstance(job, JobFunction):
        return inspect.iscoroutinefunction(job.func)
    kind = type(job)
    known = _ASYNC_TYPES.get(kind)
    if known is None:
        # Looked up on the type once; an execute set on an instance is looked at each time.
        if "execute" in getattr(job, "__dict__", ()):
            return inspect.iscoroutinefunction(job.execute)
        known = _ASYNC_TYPES[kind] = inspect.iscoroutinefunction(job.execute)
    return known


def fingerprint_of(job: Any) -> str:
    """What makes two requests for one id "the same request".

    A job may define `fingerprint() -> str`; otherwise its type names it. Transports pass a
    fingerprint of the request itself (the HTTP server hashes the job name and parameters).
    """
    fingerprint = getattr(job, "fingerprint", None)
    if callable(fingerprint):
        return str(fingerprint())
    kind = type(job)
    return f"type:{kind.__module__}.{kind.__qualname__}"
