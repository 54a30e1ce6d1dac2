"""The success kinds and failure codes of a response."""

from __future__ import annotations

import enum

__all__ = ("ResponseFailure", "ResponseSuccess")


class ResponseSuccess(enum.Enum):
    """How a job succeeded: OK, or ACCEPTED (the work goes on after the answer)."""

    OK = "ok"
    ACCEPTED = "accepted"


class ResponseFailure(enum.Enum):
    """Why a job failed. The value is the code that every transport sends to clients."""

    ERROR = "error"
    ALREADY_EXISTS = "already-exists"
    NOT_FOUND = "not-found"
    INVALID_REQUEST = "invalid-request"
    RATE_LIMIT = "rate-limit"
    NOT_ACCEPTABLE = "not-acceptable"
    REQUEST_MISMATCH = "request-mismatch"
    """The same request id arrived with a different request (an addition to the reference)."""
    UNAVAILABLE = "unavailable"
    """The server cannot take or finish the job now (closing, lost, store down): retry later."""
