"""Routes that extensions add: an HTTP request parsed into a request object for the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gearjobs.jobs import JobContext

__all__ = ("JobRoute",)


@dataclass(frozen=True, slots=True)
class JobRoute:
    """`method path` starts a job: `parse(path_params, params, context)` makes the request
    object that the extension registry turns into a job. The route follows every rule of
    `POST /jobs/{name}`: request ids, negotiation, statuses, limits and users.

    An extension offers routes through a method `http_routes() -> list[JobRoute]`.
    """

    method: str
    path: str
    name: str
    """The job name recorded for jobs started through this route."""
    parse: Callable[[Mapping[str, str], Mapping[str, Any], JobContext], Any]
