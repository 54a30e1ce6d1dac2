"""The vocabulary of jobs: requests, responses, errors, extensions and joins.

Every type of the original job package has a counterpart here. Nothing in this package does I/O.
"""

from gearjobs.jobs._client_response import ClientResponse
from gearjobs.jobs._codes import ResponseFailure, ResponseSuccess
from gearjobs.jobs._context import current_context, running_context
from gearjobs.jobs._errors import (
    ERR_RAN_TO_COMPLETION,
    GearjobsError,
    JobError,
    NoJobForRequest,
    ResponseStateError,
    SimpleError,
    StructuredJobError,
    UnknownJobError,
    as_job_error,
)
from gearjobs.jobs._extension import (
    ExtensionRegistry,
    JobExtension,
    JobExtensionFunc,
    JobInitializer,
    add_job_extension,
    default_registry,
    job_for,
)
from gearjobs.jobs._identifier import (
    InvalidIdempotencyKey,
    InvalidRequestIdentifier,
    RequestIdentifier,
)
from gearjobs.jobs._job import (
    ANONYMOUS,
    Job,
    JobContext,
    JobFunction,
    Join,
    JoinAction,
    fingerprint_of,
    is_async_job,
    is_fast,
)
from gearjobs.jobs._jobset import JobRequest, JobSet, NamedJob
from gearjobs.jobs._params import InvalidParameter, Params
from gearjobs.jobs._response import Response, ResponseWriter

ErrNoJobForRequest = NoJobForRequest
"""The reference's name for NoJobForRequest."""
ErrRanToCompletion = ERR_RAN_TO_COMPLETION
"""The reference's name for ERR_RAN_TO_COMPLETION."""

__all__ = (
    "ANONYMOUS",
    "ERR_RAN_TO_COMPLETION",
    "ClientResponse",
    "ErrNoJobForRequest",
    "ErrRanToCompletion",
    "ExtensionRegistry",
    "GearjobsError",
    "InvalidParameter",
    "InvalidIdempotencyKey",
    "InvalidRequestIdentifier",
    "Job",
    "JobContext",
    "JobError",
    "JobExtension",
    "JobExtensionFunc",
    "JobFunction",
    "JobInitializer",
    "JobRequest",
    "JobSet",
    "Join",
    "JoinAction",
    "NamedJob",
    "NoJobForRequest",
    "Params",
    "RequestIdentifier",
    "Response",
    "ResponseFailure",
    "ResponseStateError",
    "ResponseSuccess",
    "ResponseWriter",
    "SimpleError",
    "StructuredJobError",
    "UnknownJobError",
    "add_job_extension",
    "as_job_error",
    "current_context",
    "default_registry",
    "fingerprint_of",
    "is_async_job",
    "is_fast",
    "job_for",
    "running_context",
)
