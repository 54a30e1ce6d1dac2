"""Jobs for the dispatcher tests: each counts its runs and can be held mid-flight."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from gearjobs.jobs import JobError, Response, ResponseSuccess

OK = ResponseSuccess.OK


class Gate:
    """An asyncio.Event that a job may wait on, from the loop or from a worker thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        self._thread_event = threading.Event()

    def open(self) -> None:
        self.event.set()
        self._thread_event.set()

    async def wait(self) -> None:
        await self.event.wait()

    def wait_in_thread(self, timeout: float = 30.0) -> None:
        if not self._thread_event.wait(timeout):
            raise TimeoutError("gate never opened")


class Counted:
    """Counts how often execute ran (across threads)."""

    def __init__(self) -> None:
        self.runs = 0
        self._lock = threading.Lock()
        self.started = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def _ran(self) -> None:
        with self._lock:
            self.runs += 1
        self.loop.call_soon_threadsafe(self.started.set)


class DataJob(Counted):
    """Async: waits on a gate, writes pending values, then data."""

    def __init__(self, data: Any, gate: Gate | None = None, *, fast: bool = False) -> None:
        super().__init__()
        self.data = data
        self.gate = gate
        self.fast = fast

    async def execute(self, response: Response) -> None:
        self._ran()
        if self.gate is not None:
            await self.gate.wait()
        response.write_pending_success("Total", 3)
        response.success_with_data(OK, self.data)


class StreamJob(Counted):
    """Async: streams `before` pieces, waits on the gate, then streams `after` pieces."""

    def __init__(
        self,
        before: int,
        after: int,
        gate: Gate | None = None,
        *,
        structured: bool = False,
        fail_at_end: JobError | Exception | None = None,
    ) -> None:
        super().__init__()
        self.before = before
        self.after = after
        self.gate = gate
        self.structured = structured
        self.fail_at_end = fail_at_end
        self.wrote_first = asyncio.Event()

    def piece(self, i: int) -> Any:
        return {"n": i} if self.structured else f"line {i}\n"

    async def execute(self, response: Response) -> None:
        self._ran()
        response.write_pending_success("Count-Total", self.before + self.after)
        writer = response.success_with_write(OK, True, self.structured)
        for i in range(self.before):
            writer.write(self.piece(i))
        self.wrote_first.set()
        if self.gate is not None:
            await self.gate.wait()
        for i in range(self.before, self.before + self.after):
            writer.write(self.piece(i))
            await asyncio.sleep(0)
        if self.fail_at_end is not None:
            raise self.fail_at_end


class BlockingJob(Counted):
    """Sync: blocks its worker thread until the gate opens, then succeeds with its thread id."""

    def __init__(self, gate: Gate, *, fast: bool = False) -> None:
        super().__init__()
        self.gate = gate
        self.fast = fast
        self.thread: int | None = None

    def execute(self, response: Response) -> None:
        self._ran()
        self.thread = threading.get_ident()
        self.gate.wait_in_thread()
        response.success_with_data(OK, "unblocked")
