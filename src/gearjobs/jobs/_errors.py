"""Errors of gearjobs.

Every error the library raises derives from `GearjobsError`::

    GearjobsError
     ├── JobError                 a failure that a job reports to its client (has a failure code)
     │    ├── SimpleError         a code and a message
     │    │    ├── StructuredJobError   ... plus data for the client
     │    │    └── InvalidRequestIdentifier  a request id that cannot be parsed
     │    └── UnknownJobError     wraps any other exception (code ERROR, no data)
     ├── NoJobForRequest          an extension does not recognise a request
     └── ResponseStateError       a job broke the one-terminal-write rule of a response

`JobError` is the reference's JobError interface: anything with `response_failure()` and
`response_data()`. `as_job_error` turns an arbitrary exception into one.
"""

from __future__ import annotations

from typing import Any

from gearjobs.jobs._codes import ResponseFailure

__all__ = (
    "ERR_RAN_TO_COMPLETION",
    "GearjobsError",
    "JobError",
    "NoJobForRequest",
    "ResponseStateError",
    "SimpleError",
    "StructuredJobError",
    "UnknownJobError",
    "as_job_error",
)


class GearjobsError(Exception):
    """The root of every error raised by gearjobs."""


class JobError(GearjobsError):
    """A failure reported to a client: a failure code, a message and optional data."""

    def response_failure(self) -> ResponseFailure:
        """The failure code the client receives."""
        raise NotImplementedError

    def response_data(self) -> Any:
        """Structured data for the client, or None."""
        return None

    @property
    def message(self) -> str:
        """The message the client receives."""
        return str(self)


class SimpleError(JobError):
    """An error with a failure code and a message for the client."""

    def __init__(self, failure: ResponseFailure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason

    def response_failure(self) -> ResponseFailure:
        return self.failure

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.failure!r}, {self.reason!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, SimpleError):
            return NotImplemented
        return (
            self.failure == other.failure
            and self.reason == other.reason
            and self.response_data() == other.response_data()
        )

    def __hash__(self) -> int:
        return hash((type(self), self.failure, self.reason))


class StructuredJobError(SimpleError):
    """An error that carries structured data for the client besides its code and message."""

    def __init__(self, failure: ResponseFailure, reason: str, data: Any) -> None:
        super().__init__(failure, reason)
        self.data = data

    def response_data(self) -> Any:
        return self.data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.failure!r}, {self.reason!r}, {self.data!r})"


class UnknownJobError(JobError):
    """Any other exception, reported to the client as ERROR with the exception's text."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error) or type(error).__name__)
        self.error = error

    def response_failure(self) -> ResponseFailure:
        return ResponseFailure.ERROR


class NoJobForRequest(GearjobsError):
    """No job matches that request: the extension passes it on to the next one."""

    def __init__(self, message: str = "no job matches that request") -> None:
        super().__init__(message)


class ResponseStateError(GearjobsError):
    """A second terminal write on a response (a programming error of the job)."""


ERR_RAN_TO_COMPLETION = SimpleError(ResponseFailure.ERROR, "This job has run to completion.")
"""The answer for an id that is remembered after its record is no longer kept."""


def as_job_error(error: BaseException) -> JobError:
    """Return `error` itself when it is a JobError, else wrap it in an UnknownJobError."""
    if isinstance(error, JobError):
        return error
    return UnknownJobError(error)
