"""ClientResponse: the in-memory Response of the reference."""

from __future__ import annotations

import io
import json
import logging
from typing import Any, TextIO

from gearjobs.jobs._codes import ResponseSuccess
from gearjobs.jobs._errors import JobError, ResponseStateError, as_job_error
from gearjobs.jobs._response import ResponseWriter

__all__ = ("ClientResponse",)

logger = logging.getLogger("gearjobs.jobs")

STRUCTURED_GATHER_REFUSED = "jobs: Client does not support receiving streaming structured data"


class _Discard:
    """A writer that drops what it is given."""

    def write(self, data: Any) -> None:
        pass


class _GatherWriter:
    """Gathers a text stream into the response's `data` (a BytesIO)."""

    def __init__(self, buffer: io.BytesIO) -> None:
        self._buffer = buffer

    def write(self, data: Any) -> None:
        self._buffer.write(data.encode() if isinstance(data, str) else bytes(data))


class _OutputWriter:
    """Writes a stream to the response's output: text as is, events as JSON lines."""

    def __init__(self, output: TextIO, structured: bool) -> None:
        self._output = output
        self._structured = structured

    def write(self, data: Any) -> None:
        if self._structured:
            self._output.write(json.dumps(data) + "\n")
        elif isinstance(data, str):
            self._output.write(data)
        else:
            self._output.write(bytes(data).decode("utf-8", errors="replace"))


class ClientResponse:
    """A Response that gathers the answer in memory, or prints it to `output`.

    With `gather=True` (the default here), data lands in `data` (a text stream as a BytesIO),
    pending values in `pending`, a failure in `error`. Otherwise pending values, data (as a
    JSON line) and the stream are written to `output` as they come. Breaches of the
    one-terminal-write rule are recorded in `misuses` and logged; they never change the answer.
    """

    def __init__(self, *, output: TextIO | None = None, gather: bool = True) -> None:
        self.output: TextIO = output if output is not None else io.StringIO()
        self.gather = gather
        self.pending: dict[str, Any] = {}
        self.data: Any = None
        self.error: JobError | None = None
        self.kind: ResponseSuccess | None = None
        self.misuses: list[ResponseStateError] = []
        self._succeeded = False
        self._failed = False

    @property
    def succeeded(self) -> bool:
        """True once a success was written."""
        return self._succeeded

    @property
    def failed(self) -> bool:
        """True once a failure was written."""
        return self._failed

    def stream_result(self) -> bool:
        return True

    def _misuse(self, message: str) -> None:
        error = ResponseStateError(message)
        self.misuses.append(error)
        logger.warning("%s", message)

    def _begin_success(self, kind: ResponseSuccess) -> bool:
        if self._failed:
            self._misuse("jobs: Cannot call Success() after failure")
            return False
        if self._succeeded:
            self._misuse("jobs: Cannot call Success() twice")
            return False
        self._succeeded = True
        self.kind = kind
        if not self.gather:
            self.write_pending(self.output)
        return True

    def success(self, kind: ResponseSuccess) -> None:
        self._begin_success(kind)

    def success_with_data(self, kind: ResponseSuccess, data: Any) -> None:
        if not self._begin_success(kind):
            return
        self.data = data
        if not self.gather:
            self.output.write(json.dumps(data) + "\n")

    def success_with_write(
        self, kind: ResponseSuccess, flush: bool, structured: bool
    ) -> ResponseWriter:
        if not self._begin_success(kind):
            return _Discard()
        if self.gather:
            if structured:
                self._misuse(STRUCTURED_GATHER_REFUSED)
                self.error = as_job_error(ResponseStateError(STRUCTURED_GATHER_REFUSED))
                return _Discard()
            buffer = io.BytesIO()
            self.data = buffer
            return _GatherWriter(buffer)
        return _OutputWriter(self.output, structured)

    def failure(self, error: BaseException) -> None:
        if self._succeeded:
            self._misuse("jobs: may not invoke failure after Success()")
            return
        if self._failed:
            self._misuse("jobs: may not write failure twice")
            return
        self._failed = True
        self.error = as_job_error(error)
        self.pending.clear()

    def write_pending_success(self, name: str, value: Any) -> None:
        if self._failed:
            return
        self.pending[name] = value

    def write_pending(self, output: TextIO) -> None:
        """Write the pending values as `name: value` lines, in name order."""
        for name in sorted(self.pending):
            output.write(f"{name}: {self.pending[name]}\n")

    def stream_failed(self, error: JobError) -> None:
        """Record that a stream that had begun ended with an error (the stream's error marker)."""
        self.error = error
