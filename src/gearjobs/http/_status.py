"""How failures and answers map onto HTTP statuses, the same way every time."""

from __future__ import annotations

from typing import Final

from gearjobs.jobs import ResponseFailure, ResponseSuccess
from gearjobs.store import Body, JobRecord, JobState

__all__ = ("FAILURE_STATUS", "RETRY_AFTER", "failure_status", "recorded_status", "success_status")

FAILURE_STATUS: Final = {
    ResponseFailure.ERROR: 500,
    ResponseFailure.ALREADY_EXISTS: 409,
    ResponseFailure.NOT_FOUND: 404,
    ResponseFailure.INVALID_REQUEST: 400,
    ResponseFailure.RATE_LIMIT: 429,
    ResponseFailure.NOT_ACCEPTABLE: 406,
    ResponseFailure.REQUEST_MISMATCH: 422,
    ResponseFailure.UNAVAILABLE: 503,
}

RETRY_AFTER: Final = "1"
"""Seconds a client should wait after a 429 or 503."""


def failure_status(failure: ResponseFailure) -> int:
    """The HTTP status of a failure code."""
    return FAILURE_STATUS[failure]


def success_status(kind: ResponseSuccess, body: Body) -> int:
    """200 with data, 204 without, 202 when accepted or streamed."""
    if kind is ResponseSuccess.ACCEPTED or body is Body.TEXT or body is Body.EVENTS:
        return 202
    return 200 if body is Body.DATA else 204


def recorded_status(record: JobRecord) -> int | None:
    """The status of a finished job's recorded answer (None while it runs)."""
    if not record.state.finished:
        return None
    if record.success is not None and record.body is not None:
        return success_status(record.success, record.body)
    if record.failure is not None:
        return failure_status(record.failure)
    return 503 if record.state is JobState.LOST else None
