"""The recording response: what a running job writes to; it feeds the job's journal."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from gearjobs._json import dumps
from gearjobs.jobs import (
    JobError,
    ResponseFailure,
    ResponseSuccess,
    ResponseWriter,
    SimpleError,
    as_job_error,
)
from gearjobs.store import ENDED, Body, Chunk, Entry, Event, Failed, Succeeded

__all__ = ("InvalidPendingValue", "RecordingResponse", "check_pending")

logger = logging.getLogger("gearjobs.dispatcher")

_NEW, _STREAMING, _DONE = 0, 1, 2


class _StreamWriter:
    """The writer a streaming job gets: each write becomes one journal entry."""

    __slots__ = ("_response", "_structured")

    def __init__(self, response: RecordingResponse, structured: bool) -> None:
        self._response = response
        self._structured = structured

    def write(self, data: Any) -> None:
        response = self._response
        if response._state != _STREAMING:
            response._misuse("write to a stream that has ended")
            return
        if self._structured:
            response._append(Event(data))
        elif isinstance(data, str):
            response._append(Chunk(data.encode()))
        else:
            response._append(Chunk(bytes(data)))


class RecordingResponse:
    """A Response that records the answer into a journal instead of writing to a client.

    It enforces the response rules: one terminal write (breaches are logged with the request
    id and dropped), pending values travel in the Succeeded entry and are dropped on failure,
    a pending value written after the success is dropped. A job running in a worker thread
    writes through the event loop, so the journal is only touched on the loop's thread.
    """

    def __init__(
        self,
        append: Callable[[Entry], None],
        *,
        loop: asyncio.AbstractEventLoop,
        label: object,
        json_only: bool = False,
    ) -> None:
        self._direct = append
        self._json_only = json_only
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._label = label
        self._state = _NEW
        self._pending: dict[str, Any] = {}
        self.misuses: list[str] = []

    def _append(self, entry: Entry) -> None:
        if threading.get_ident() == self._loop_thread:
            self._direct(entry)
        else:
            self._loop.call_soon_threadsafe(self._direct, entry)

    def _misuse(self, message: str) -> None:
        self.misuses.append(message)
        logger.error("job %s: %s (ignored)", self._label, message)

    def _begin(self, what: str) -> bool:
        if self._state != _NEW:
            self._misuse(f"{what} after the response was written")
            return False
        return True

    # The Response protocol

    def stream_result(self) -> bool:
        return True

    def success(self, kind: ResponseSuccess) -> None:
        if self._begin("success"):
            self._state = _DONE
            self._append(Succeeded(kind, Body.NONE, self._pending))

    def success_with_data(self, kind: ResponseSuccess, data: Any) -> None:
        if not self._begin("success with data"):
            return
        self._state = _DONE
        # Encoded now, once: the store and the answers reuse the bytes, and data that is not
        # JSON fails here, in the job that wrote it, when the store keeps JSON only.
        try:
            encoded: bytes | None = dumps(data)
        except (TypeError, ValueError) as exc:
            if self._json_only:
                logger.error("job %s: its data is not JSON: %s", self._label, exc)
                self._append(
                    Failed(
                        ResponseFailure.ERROR,
                        f"the job's data is not JSON ({exc}): this server records JSON only",
                    )
                )
                return
            encoded = None  # kept as the object the job wrote (an in-process answer)
        self._append(Succeeded(kind, Body.DATA, self._pending, data, encoded))

    def success_with_write(
        self, kind: ResponseSuccess, flush: bool, structured: bool
    ) -> ResponseWriter:
        if not self._begin("success with a stream"):
            return _StreamWriter(self, structured)
        self._state = _STREAMING
        body = Body.EVENTS if structured else Body.TEXT
        self._append(Succeeded(kind, body, self._pending))
        return _StreamWriter(self, structured)

    def failure(self, error: BaseException) -> None:
        if self._begin("failure"):
            self._state = _DONE
            self._append(self._failed(as_job_error(error)))

    def write_pending_success(self, name: str, value: Any) -> None:
        if self._state != _NEW:
            self._misuse(f"pending value {name!r} written after the response")
            return
        check_pending(name, value)
        if self._json_only:
            try:
                dumps(value)
            except (TypeError, ValueError) as exc:
                raise InvalidPendingValue(
                    f"pending value {name!r} is not JSON ({exc}): this server records JSON only"
                ) from None
        self._pending[name] = value

    # Called by the dispatcher when the job's execute returns or raises

    def finish(self) -> None:
        """The job returned: close its stream, or make a plain success if it wrote nothing."""
        if self._state == _NEW:
            self.success(ResponseSuccess.OK)
        elif self._state == _STREAMING:
            self._state = _DONE
            self._append(ENDED)

    def fail(self, error: BaseException) -> None:
        """The job raised: its failure, or the error marker ending its stream."""
        if self._state == _DONE:
            logger.error("job %s raised after its answer was written", self._label, exc_info=error)
            return
        self._state = _DONE
        self._append(self._failed(as_job_error(error)))

    def _failed(self, error: JobError) -> Failed:
        """The Failed entry of `error`; on a store that records JSON only, data that is not
        JSON makes it an ERROR that says so (an answer that cannot be recorded never goes
        out)."""
        failure, message, data = error.response_failure(), error.message, error.response_data()
        if self._json_only and data is not None:
            try:
                dumps(data)
            except (TypeError, ValueError) as exc:
                logger.error("job %s: its failure data is not JSON: %s", self._label, exc)
                text = f"the job failed ({failure._value_}: {message}), and its data is not JSON"
                return Failed(ResponseFailure.ERROR, f"{text} ({exc})")
        return Failed(failure, message, data)


class InvalidPendingValue(SimpleError):
    """A pending value that no transport could send safely (it would break or inject headers)."""

    def __init__(self, reason: str) -> None:
        super().__init__(ResponseFailure.ERROR, reason)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_VALUE = re.compile(r"[\x20-\x7e]{0,4096}")


def check_pending(name: str, value: Any) -> None:
    """Refuse names and values that are not safe as an HTTP header `X-{name}: {value}`.

    Names are letters, digits and dashes (at most 64); values (strings as they are, anything
    else as JSON) are printable ASCII without CR or LF, at most 4096 characters.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidPendingValue(
            f"pending value name {name!r} must be letters, digits and dashes (at most 64)"
        )
    text = value if isinstance(value, str) else json.dumps(value)
    if not _VALUE.fullmatch(text):
        raise InvalidPendingValue(
            f"pending value {name!r} must be printable ASCII without CR or LF (at most 4096)"
        )
