"""JobSet: jobs registered by name with a decorator, as one JobExtension."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from gearjobs.jobs._errors import NoJobForRequest
from gearjobs.jobs._job import Job, JobContext
from gearjobs.jobs._params import Params
from gearjobs.jobs._response import Response

__all__ = ("JobRequest", "JobSet", "NamedJob")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A request for the job registered under `name`, with its parameters.

    This is what the HTTP server hands to the extension registry for `POST /jobs/{name}`.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    context: JobContext | None = None


@dataclass(frozen=True, slots=True)
class NamedJob:
    """What a JobSet knows of one job: its name, queue, factory and parameter description."""

    name: str
    fast: bool
    make: Callable[[Params], Job]
    description: str = ""
    parameters: Mapping[str, Any] | None = None
    """A JSON Schema of the parameters, when the job declares one."""


class _FunctionJob:
    """A job made from a decorated function `func(params, response)`."""

    __slots__ = ("fast", "func", "name", "params")

    def __init__(self, func: Callable[..., Any], params: Params, *, fast: bool, name: str) -> None:
        self.func = func
        self.params = params
        self.fast = fast
        self.name = name

    def execute(self, response: Response) -> Awaitable[None] | None:
        result: Awaitable[None] | None = self.func(self.params, response)
        return result


class JobSet:
    """Jobs registered by name; a JobExtension for requests of type JobRequest.

    Decorate a class whose constructor takes the Params (check them there: a bad parameter is
    refused before the request id is used), or a function `func(params, response)`::

        jobs = JobSet()

        @jobs.job("greet", fast=True)
        def greet(params: Params, response: Response) -> None:
            name = params.string("name", "world")
            response.success_with_data(ResponseSuccess.OK, {"hello": name})
    """

    def __init__(self) -> None:
        self._jobs: dict[str, NamedJob] = {}

    def job(
        self,
        name: str,
        *,
        fast: bool = False,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated class or function under `name`."""

        def register(target: F) -> F:
            if name in self._jobs:
                raise ValueError(f"a job named {name!r} is already registered")
            doc = description or inspect.getdoc(target) or ""
            if inspect.isclass(target):
                cls = cast(Callable[[Params], Job], target)

                def make(params: Params) -> Job:
                    job: Job = cls(params)
                    if not hasattr(job, "fast"):
                        setattr(job, "fast", fast)  # noqa: B010 - classes may omit it
                    return job
            else:
                func = target

                def make(params: Params) -> Job:
                    return _FunctionJob(func, params, fast=fast, name=name)

            self._jobs[name] = NamedJob(name, fast, make, doc.split("\n")[0], parameters)
            return target

        return register

    @property
    def jobs(self) -> Mapping[str, NamedJob]:
        """The registered jobs by name."""
        return dict(self._jobs)

    def job_for(self, request: Any) -> Job:
        if not isinstance(request, JobRequest):
            raise NoJobForRequest()
        named = self._jobs.get(request.name)
        if named is None:
            raise NoJobForRequest()
        return named.make(Params(request.params))
