"""The example jobs. Each call of `example_jobs()` makes a fresh set (with its own tally)."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from gearjobs.jobs import (
    InvalidParameter,
    JobSet,
    Params,
    Response,
    ResponseFailure,
    ResponseSuccess,
    StructuredJobError,
)

__all__ = ("example_jobs",)

OK = ResponseSuccess.OK


def example_jobs(node: str | None = None) -> JobSet:
    """echo, sleep, count, fail and tally, registered in a new JobSet.

    `node` names this server process in tally's answers (default: host:pid).
    """
    jobs = JobSet()
    node_name = node or f"{socket.gethostname()}:{os.getpid()}"
    tallies: dict[str, int] = {}

    @jobs.job(
        "echo",
        fast=True,
        description="Returns its parameters.",
        parameters={"type": "object"},
    )
    class Echo:
        def __init__(self, params: Params) -> None:
            self.params = params.as_dict()

        async def execute(self, response: Response) -> None:
            response.success_with_data(OK, {"echo": self.params})

    @jobs.job(
        "sleep",
        description="Streams `lines` text lines evenly over `seconds`.",
        parameters={
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0, "maximum": 300, "default": 1},
                "lines": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1},
            },
            "additionalProperties": False,
        },
    )
    class Sleep:
        def __init__(self, params: Params) -> None:
            params.only("seconds", "lines")
            self.seconds = params.number("seconds", 1, min=0, max=300)
            self.lines = params.integer("lines", 1, min=1, max=10000)

        async def execute(self, response: Response) -> None:
            writer = response.success_with_write(OK, True, False)
            loop = asyncio.get_running_loop()
            start = loop.time()
            step = self.seconds / self.lines
            for i in range(1, self.lines + 1):
                delay = start + step * i - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(f"tick {i}\n")

    @jobs.job(
        "count",
        description="Streams events {n, progress, total} for n = 1 .. `to`, one per `delay`.",
        parameters={
            "type": "object",
            "properties": {
                "to": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 10},
                "delay": {"type": "number", "minimum": 0, "maximum": 10, "default": 0.1},
            },
            "additionalProperties": False,
        },
    )
    class Count:
        def __init__(self, params: Params) -> None:
            params.only("to", "delay")
            self.to = params.integer("to", 10, min=1, max=100000)
            self.delay = params.number("delay", 0.1, min=0, max=10)

        async def execute(self, response: Response) -> None:
            response.write_pending_success("Count-Total", self.to)
            writer = response.success_with_write(OK, True, True)
            for n in range(1, self.to + 1):
                if self.delay:
                    await asyncio.sleep(self.delay)
                elif n % 100 == 0:
                    await asyncio.sleep(0)
                writer.write({"n": n, "progress": n, "total": self.to})

    @jobs.job(
        "fail",
        fast=True,
        description="Fails with the given code, message and data.",
        parameters={
            "type": "object",
            "properties": {
                "code": {"type": "string", "enum": [f.value for f in ResponseFailure]},
                "message": {"type": "string"},
                "data": {},
            },
            "required": ["code"],
            "additionalProperties": False,
        },
    )
    class Fail:
        def __init__(self, params: Params) -> None:
            params.only("code", "message", "data")
            code = params.string("code")
            try:
                self.failure = ResponseFailure(code)
            except ValueError:
                codes = ", ".join(f.value for f in ResponseFailure)
                raise InvalidParameter("code", f"must be one of {codes}") from None
            self.message = params.string("message", f"failed with {code} as asked")
            self.data: Any = params.get("data")

        async def execute(self, response: Response) -> None:
            response.failure(StructuredJobError(self.failure, self.message, self.data))

    @jobs.job(
        "tally",
        fast=True,
        description="Adds one to the counter `key` of this server process (unless `peek`).",
        parameters={
            "type": "object",
            "properties": {"key": {"type": "string"}, "peek": {"type": "boolean"}},
            "required": ["key"],
            "additionalProperties": False,
        },
    )
    class Tally:
        def __init__(self, params: Params) -> None:
            params.only("key", "peek")
            self.key = params.string("key", max_length=200)
            self.peek = params.boolean("peek", False)

        async def execute(self, response: Response) -> None:
            if not self.peek:
                tallies[self.key] = tallies.get(self.key, 0) + 1
            value = tallies.get(self.key, 0)
            response.success_with_data(OK, {"key": self.key, "value": value, "node": node_name})

    return jobs
