"""Your own jobs, in a few lines: serve them with

    gearjobs serve --app examples.custom_jobs:extensions

then `gearjobs run greet '{"name": "Ada"}'`, `gearjobs run slow-square '{"n": 7}'`, or
`curl -X PUT http://127.0.0.1:43273/squares/7` (a route of the extension's own).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gearjobs.http import JobRoute
from gearjobs.jobs import (
    Job,
    JobContext,
    JobRequest,
    JobSet,
    NoJobForRequest,
    Params,
    Response,
    ResponseSuccess,
)

jobs = JobSet()


@jobs.job("greet", fast=True, description="Says hello.")
def greet(params: Params, response: Response) -> None:
    """A decorated function: its params are checked when it runs."""
    name = params.string("name", "world")
    response.success_with_data(ResponseSuccess.OK, {"greeting": f"Hello, {name}!"})


class SlowSquare:
    """A request class with its own extension: parameters are checked before the job is queued,
    and the extension adds a route of its own, `PUT /squares/{n}`."""

    fast = False

    def __init__(self, n: int) -> None:
        self.n = n

    def execute(self, response: Response) -> None:  # a plain def runs in a worker thread
        time.sleep(0.1)
        response.success_with_data(ResponseSuccess.OK, {"n": self.n, "square": self.n * self.n})


class SquareExtension:
    """Maps `POST /jobs/slow-square` and `PUT /squares/{n}` to SlowSquare."""

    def job_for(self, request: Any) -> Job:
        if isinstance(request, JobRequest) and request.name == "slow-square":
            return SlowSquare(Params(request.params).integer("n", min=0, max=10**6))
        raise NoJobForRequest()

    def http_routes(self) -> list[JobRoute]:
        def parse(path: Mapping[str, str], params: Mapping[str, Any], ctx: JobContext) -> Any:
            return JobRequest("slow-square", {"n": _number(path["n"])}, ctx)

        return [JobRoute("PUT", "/squares/{n}", "slow-square", parse)]


def _number(text: str) -> Any:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else text


extensions = [jobs, SquareExtension()]
