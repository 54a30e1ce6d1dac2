"""The context of the job that is running now."""

from __future__ import annotations

from contextvars import ContextVar

from gearjobs.jobs._errors import GearjobsError
from gearjobs.jobs._job import JobContext

__all__ = ("current_context", "running_context")

running_context: ContextVar[JobContext] = ContextVar("gearjobs_job_context")
"""Set by the dispatcher around each job's execute (on the loop and in worker threads)."""


def current_context() -> JobContext:
    """The JobContext (request id and user) of the job that is executing."""
    try:
        return running_context.get()
    except LookupError:
        raise GearjobsError("current_context() called outside a running job") from None
