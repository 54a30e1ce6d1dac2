"""gearjobs: idempotent, joinable, streaming jobs, in process or over HTTP."""

from gearjobs.dispatcher import Dispatcher, JobHandle
from gearjobs.jobs import (
    ClientResponse,
    GearjobsError,
    Job,
    JobContext,
    JobError,
    JobFunction,
    RequestIdentifier,
    Response,
    ResponseFailure,
    ResponseSuccess,
    SimpleError,
    StructuredJobError,
)

__version__ = "0.1.0"

__all__ = (
    "ClientResponse",
    "Dispatcher",
    "GearjobsError",
    "Job",
    "JobContext",
    "JobError",
    "JobFunction",
    "JobHandle",
    "RequestIdentifier",
    "Response",
    "ResponseFailure",
    "ResponseSuccess",
    "SimpleError",
    "StructuredJobError",
    "__version__",
)
