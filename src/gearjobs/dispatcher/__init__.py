"""The dispatcher: bounded fast and slow queues, one run per request id, joins and journals."""

from gearjobs.dispatcher._dispatcher import (
    ERR_MISMATCH,
    ERR_RATE_LIMIT,
    ERR_SHUTTING_DOWN,
    ERR_STILL_RUNNING,
    LOST_MESSAGE,
    Dispatcher,
)
from gearjobs.dispatcher._handle import JobHandle
from gearjobs.dispatcher._journal import Journal
from gearjobs.dispatcher._observer import JobLog, JobObserver, JsonLogFormatter
from gearjobs.dispatcher._pump import ResponsePump
from gearjobs.dispatcher._queue import JobQueue
from gearjobs.dispatcher._recording import InvalidPendingValue, RecordingResponse, check_pending

__all__ = (
    "ERR_MISMATCH",
    "ERR_RATE_LIMIT",
    "ERR_SHUTTING_DOWN",
    "ERR_STILL_RUNNING",
    "LOST_MESSAGE",
    "Dispatcher",
    "InvalidPendingValue",
    "JobHandle",
    "JobLog",
    "JobObserver",
    "JobQueue",
    "Journal",
    "JsonLogFormatter",
    "RecordingResponse",
    "ResponsePump",
    "check_pending",
)
