"""Replays journal entries into a Response (an in-process client of a job)."""

from __future__ import annotations

from gearjobs.jobs import Response, ResponseWriter, StructuredJobError
from gearjobs.store import Body, Chunk, Entry, Event, Failed, Succeeded

__all__ = ("ResponsePump",)


class ResponsePump:
    """Feeds entries, in order, to the Response methods that would have produced them.

    A Failed entry after a stream began (the stream's error marker) goes to the response's
    `stream_failed(error)` when it has one, otherwise it is dropped: the response already
    holds a success.
    """

    __slots__ = ("_response", "_writer")

    def __init__(self, response: Response) -> None:
        self._response = response
        self._writer: ResponseWriter | None = None

    def __call__(self, entry: Entry) -> None:
        response = self._response
        if isinstance(entry, Chunk):
            if self._writer is not None:
                self._writer.write(entry.data)
        elif isinstance(entry, Event):
            if self._writer is not None:
                self._writer.write(entry.value)
        elif isinstance(entry, Succeeded):
            for name, value in entry.pending.items():
                response.write_pending_success(name, value)
            if entry.body is Body.NONE:
                response.success(entry.kind)
            elif entry.body is Body.DATA:
                response.success_with_data(entry.kind, entry.data)
            else:
                structured = entry.body is Body.EVENTS
                self._writer = response.success_with_write(entry.kind, True, structured)
        elif isinstance(entry, Failed):
            error = StructuredJobError(entry.failure, entry.message, entry.data)
            if self._writer is None:
                response.failure(error)
            else:
                stream_failed = getattr(response, "stream_failed", None)
                if callable(stream_failed):
                    stream_failed(error)
