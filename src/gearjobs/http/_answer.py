"""Turning a job's journal into an HTTP answer: status, pending headers and body."""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from gearjobs._json import dumps, dumps_line
from gearjobs.dispatcher import JobHandle
from gearjobs.http._negotiate import Mode
from gearjobs.http._status import RETRY_AFTER, failure_status, success_status
from gearjobs.http._table import NotATable, render_table
from gearjobs.jobs import ResponseFailure
from gearjobs.store import Body, Chunk, Ended, Entry, Event, Failed, Succeeded

__all__ = ("answer", "error_response", "sse_answer")

NDJSON = "application/x-ndjson"
TEXT = "text/plain; charset=utf-8"


class JSONAnswer(JSONResponse):
    """Starlette's JSONResponse, encoded by orjson (see `gearjobs._json`), its headers made
    in one pass (nearly every answer is one of these)."""

    def render(self, content: Any) -> bytes:
        return dumps(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        raw = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        ]
        names = {name for name, _ in raw}
        status = self.status_code
        if b"content-length" not in names and status >= 200 and status not in (204, 304):
            raw.append((b"content-length", b"%d" % len(self.body)))
        if b"content-type" not in names:
            raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw


class EncodedJSONAnswer(JSONAnswer):
    """A JSON answer whose body was encoded already (as the job wrote its data)."""

    def render(self, content: Any) -> bytes:
        body: bytes = content
        return body


def error_response(
    failure: ResponseFailure,
    message: str,
    data: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    status: int | None = None,
) -> JSONResponse:
    """The JSON body of a failure: message, code and (when there is some) data."""
    body: dict[str, Any] = {"message": message, "code": failure.value}
    if data is not None:
        body["data"] = data
    all_headers = dict(headers or {})
    code = status or failure_status(failure)
    if code in (429, 503):
        all_headers["Retry-After"] = RETRY_AFTER
    return JSONAnswer(body, status_code=code, headers=all_headers)


def pending_headers(succeeded: Succeeded) -> dict[str, str]:
    """Pending values as `X-{name}` headers."""
    return {f"X-{name}": _header_value(value) for name, value in succeeded.pending.items()}


def _header_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _marker(failed: Failed, events: bool) -> bytes:
    """The error marker that ends a stream whose job failed after it began streaming."""
    error: dict[str, Any] = {"code": failed.failure.value, "message": failed.message}
    if failed.data is not None:
        error["data"] = failed.data
    if events:
        return dumps_line({"$error": error})
    # backslashreplace: a message may hold a lone surrogate (a file name from a disk).
    return f"\n$error: {failed.failure.value}: {failed.message}\n".encode(
        "utf-8", "backslashreplace"
    )


async def _stream_body(
    batches: AsyncGenerator[list[Entry], None], events: bool
) -> AsyncIterator[bytes]:
    try:
        async for batch in batches:
            parts = []
            for entry in batch:
                if isinstance(entry, Chunk):
                    parts.append(entry.data)
                elif isinstance(entry, Event):
                    parts.append(entry.line())
                elif isinstance(entry, Failed):
                    parts.append(_marker(entry, events))
            if parts:
                yield b"".join(parts)
            if batch and isinstance(batch[-1], Ended | Failed):
                return
    finally:
        await batches.aclose()


async def answer(handle: JobHandle, mode: Mode, headers: dict[str, str]) -> Response:
    """The HTTP answer for a job, from the start of its journal."""
    if mode is Mode.SSE:
        return await sse_answer(handle, 0, headers)
    # The first entry says what the answer is; most answers (data, a failure) are only that.
    first = await handle.first()
    if first is None:
        return error_response(ResponseFailure.ERROR, "the job's answer is missing", headers=headers)
    if isinstance(first, Failed):
        return error_response(first.failure, first.message, first.data, headers=headers)
    if not isinstance(first, Succeeded):
        message = "the job's answer is malformed"
        return error_response(ResponseFailure.ERROR, message, headers=headers)
    if first.pending:
        headers = {**headers, **pending_headers(first)}
    status = success_status(first.kind, first.body)
    if first.body is Body.NONE:
        return Response(status_code=status, headers=headers)
    if first.body is Body.DATA:
        if mode is Mode.TABLE:
            try:
                return PlainTextResponse(render_table(first.data), status, headers=headers)
            except NotATable as exc:
                return error_response(ResponseFailure.NOT_ACCEPTABLE, str(exc), headers=headers)
        if first.encoded is not None:
            return EncodedJSONAnswer(first.encoded, status_code=status, headers=headers)
        try:
            return JSONAnswer(first.data, status_code=status, headers=headers)
        except (TypeError, ValueError):  # an object kept as it is, by the memory store
            message = "the job's data has no JSON form: ask for text/plain (a table)"
            return error_response(ResponseFailure.NOT_ACCEPTABLE, message, headers=headers)
    if mode is not Mode.STREAM:
        # The client did not ask for a stream: it gets 204, and the job runs to its end.
        return Response(status_code=204, headers=headers)
    events = first.body is Body.EVENTS
    return StreamingResponse(
        _stream_body(handle.follow_batches(1), events),
        status_code=status,
        headers=headers,
        media_type=NDJSON if events else TEXT,
    )


PRIMING = 16
"""Text chunks read before a resume point, to decode what the first one resumed continues."""


def _sse_event(position: int, entry: Entry, decoder: codecs.IncrementalDecoder) -> bytes:
    if isinstance(entry, Chunk):
        kind = "text"
        # One decoder for the stream: a character split between two chunks comes whole
        # with the second (the first chunk's event carries the text before it).
        data = decoder.decode(entry.data)
    elif isinstance(entry, Event):
        kind = "event"
        data = entry.line().decode().rstrip("\n")
    elif isinstance(entry, Succeeded):
        kind = "success"
        body: dict[str, Any] = {
            "kind": entry.kind.value,
            "body": entry.body.value,
            "pending": dict(entry.pending),
        }
        if entry.body is Body.DATA:
            body["data"] = entry.data
        data = dumps(body).decode()
    elif isinstance(entry, Failed):
        kind = "failure"
        error: dict[str, Any] = {"message": entry.message, "code": entry.failure.value}
        if entry.data is not None:
            error["data"] = entry.data
        data = dumps(error).decode()
    else:
        kind = "end"
        data = "{}"
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    payload = "".join(f"data: {line}\n" for line in lines)
    return f"id: {position}\nevent: {kind}\n{payload}\n".encode()


async def _sse_body(
    batches: AsyncGenerator[list[Entry], None], offset: int, first: list[Entry], start: int
) -> AsyncIterator[bytes]:
    """The events from position `offset`, of the entries that `batches` gives from `start`
    (those before `offset` only prime the text decoder)."""
    position = start
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        batch = first
        while True:
            if batch:
                parts = []
                for entry in batch:
                    if position >= offset:
                        parts.append(_sse_event(position, entry, decoder))
                    elif isinstance(entry, Chunk):
                        decoder.decode(entry.data)
                    position += 1
                if parts:
                    yield b"".join(parts)
            try:
                batch = await anext(batches)
            except StopAsyncIteration:
                return
    finally:
        await batches.aclose()


async def sse_answer(handle: JobHandle, offset: int, headers: dict[str, str]) -> Response:
    """The journal from `offset` as Server-Sent Events; each event's id is its position.

    Event types: `success` (kind, body, pending values, data), `text` (a chunk of a text
    stream), `event` (one structured event), `end` (the stream ended), `failure` (message,
    code, data). A client resumes with `Last-Event-ID: <id>` right after that entry. The
    answer waits for the job's first entry, so that its pending values are headers as in
    every other answer, and, resumed, for an entry at the resume point: at or past the end
    of a finished journal it is 204, which tells an `EventSource` not to reconnect.
    """
    # A resumed stream begins up to PRIMING entries earlier, for a character that the chunk
    # before the resume point began (entry 0 is the success: chunks are from 1 on).
    start = max(1, offset - PRIMING) if offset > 1 else offset
    batches = handle.follow_batches(start)
    first: list[Entry] = []
    if offset == 0:
        try:
            first = await anext(batches)
        except StopAsyncIteration:
            first = []
        if first and isinstance(first[0], Succeeded):
            headers = {**headers, **pending_headers(first[0])}
    else:
        succeeded = await handle.first()
        if isinstance(succeeded, Succeeded) and succeeded.pending:
            headers = {**headers, **pending_headers(succeeded)}
        while start + len(first) <= offset:  # no entry at the resume point yet
            try:
                first += await anext(batches)
            except StopAsyncIteration:  # the journal ended before it
                await batches.aclose()
                return Response(status_code=204, headers=headers)
    return StreamingResponse(
        _sse_body(batches, offset, first, start),
        status_code=200,
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        media_type="text/event-stream",
    )
