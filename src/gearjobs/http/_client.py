"""The HTTP client: runs remote jobs into a Response, retrying with the same id so it joins.

`Client` (sync) and `AsyncClient` share one core (`_Exchange`), which builds each request,
reads each answer into the Response and decides whether to retry; the two classes only do
the I/O. A retry after a dropped connection replays the job's answer from its start: the
core skips what the Response already received, so the Response sees every byte once. Once a
stream began, retries follow that run's output (`GET /jobs/{id}/output`) rather than send
the request again, which would run a lost job anew and splice two runs' streams.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

from gearjobs.jobs import (
    ERR_RAN_TO_COMPLETION,
    GearjobsError,
    JobError,
    RequestIdentifier,
    Response,
    ResponseFailure,
    ResponseSuccess,
    ResponseWriter,
    StructuredJobError,
)
from gearjobs.store import LOST_MESSAGE

__all__ = ("AsyncClient", "Client", "ServerUnreachable")

DEFAULT_URL = "http://127.0.0.1:43273"
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 30.0
_NOT_PENDING = frozenset({"x-request-id", "x-job-state", "x-accel-buffering"})
DIVERGED = (
    "the job ran again after its server stopped, and the new run's output differs from "
    "what was shown of the lost run's: it is not joined to it"
)
_MARKER = b"\n$error: "
"""How the error marker that ends a failed text stream begins (API.md)."""
_TEXT_MARKER = re.compile(rb"\n\$error: ([a-z-]+): ([^\n]*)\n", re.DOTALL)


class ServerUnreachable(GearjobsError):
    """The server could not be reached (or stayed busy) through every try."""


class _Retries:
    """How many tries are left, and how long to wait before the next one."""

    def __init__(self, tries: int) -> None:
        self.tries = tries
        self.attempt = 0
        self.last_error = ""

    def _next_try(self, what: str) -> float | None:
        """Count a failed try; the backoff before the next, or None when tries are used up."""
        self.attempt += 1
        self.last_error = what
        if self.attempt >= self.tries:
            return None
        backoff: float = min(0.2 * 2.0 ** (self.attempt - 1), MAX_RETRY_AFTER)
        return backoff

    def retry_answer(self, answer: httpx.Response) -> float | None:
        """Seconds to wait before trying again after this answer (429 or 503), else None."""
        if answer.status_code not in RETRY_STATUSES:
            return None
        backoff = self._next_try(f"HTTP {answer.status_code}")
        if backoff is None:
            return None  # the last 429 or 503 is the answer
        given = _retry_after(answer.headers.get("retry-after"))
        return backoff if given is None else given

    def retry_error(self, error: Exception) -> float:
        """Seconds to wait before trying again after a transport error; raises when done."""
        backoff = self._next_try(f"{type(error).__name__}: {error}")
        if backoff is None:
            raise ServerUnreachable(
                f"could not reach the server after {self.tries} tries ({self.last_error})"
            ) from error
        return backoff


def _is_lost(body: bytes) -> bool:
    """Whether a failure's JSON body is the answer of a job that was lost."""
    try:
        return bool(json.loads(body).get("message") == LOST_MESSAGE)
    except (ValueError, AttributeError):
        return False


def _retry_after(value: str | None) -> float | None:
    """Seconds that a Retry-After header asks for (a number or an HTTP date), from 0 to
    MAX_RETRY_AFTER; None when it is missing or says nothing usable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # not an HTTP date (those are in GMT)
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _marker_start(data: bytes) -> int:
    """The length of the longest end of `data` that could begin an error marker."""
    for size in range(min(len(_MARKER) - 1, len(data)), 0, -1):
        if data.endswith(_MARKER[:size]):
            return size
    return 0


class _Exchange(_Retries):
    """One job's requests and answers, whatever does the I/O."""

    def __init__(self, response: Response, *, tries: int) -> None:
        super().__init__(tries)
        self.response = response
        self.began = False
        self.writer: ResponseWriter | None = None
        self.structured = False
        self.delivered = 0  # bytes (text) or lines (events) already given to the Response
        self.seen = 0  # of the current attempt
        self.shown = hashlib.sha256()
        """Of the stream's bytes written to the Response (`delivered`, less `held`)."""
        self.replayed = hashlib.sha256()
        """Of this try's bytes up to `delivered`: a replay must match what was shown."""
        self.diverged = False
        self.first: tuple[str, str, dict[str, str], bytes | None] | None = None
        self.again: float | None = None
        """Set when the stream's run was lost: wait this long, then send the request again."""
        self.buffer = b""
        self.held = b""
        """The end of a text stream so far that may be the error marker (kept until known)."""
        self.request_id: str | None = None
        self.streaming = False
        """This try's answer is the stream (the first, or its replay after a drop)."""

    def begin(self, answer: httpx.Response) -> None:
        """Read the status and headers of an answer into the Response."""
        self.seen = 0
        self.buffer = b""
        self.replayed = hashlib.sha256()
        self.request_id = answer.headers.get("x-request-id", self.request_id)
        status = answer.status_code
        if self.began:
            # A retry after a drop: the answer began in an earlier try. Its replay goes on
            # with the stream; any other answer (the job was lost meanwhile, say) ends it.
            self.streaming = self.writer is not None and _is_stream(answer)
            return
        if status >= 400:
            return  # read_whole() reports the failure from the body
        self.began = True
        for raw_name, raw_value in answer.headers.raw:
            name = raw_name.decode("latin-1")
            if name.lower().startswith("x-") and name.lower() not in _NOT_PENDING:
                self.response.write_pending_success(name[2:], raw_value.decode("latin-1"))
        kind = ResponseSuccess.ACCEPTED if status == 202 else ResponseSuccess.OK
        content_type = answer.headers.get("content-type", "")
        if _is_stream(answer):
            self.structured = content_type.startswith("application/x-ndjson")
            self.streaming = True
            self.writer = self.response.success_with_write(
                ResponseSuccess.OK, True, self.structured
            )
        elif status == 204:
            if answer.headers.get("x-job-state") == "ran-to-completion":
                self.began = False
                self.response.failure(ERR_RAN_TO_COMPLETION)
            else:
                self.response.success(kind)
        # 200 and 202 with data: read_whole() writes the data.

    def read_whole(self, answer: httpx.Response, body: bytes) -> None:
        """An answer that is not a stream: data or a failure."""
        status = answer.status_code
        if self.writer is not None:  # after a stream began: this answer ends it
            if status >= 400:
                self._stream_failed(_failure(status, body))
            elif answer.headers.get("x-job-state") == "ran-to-completion":
                self._stream_failed(ERR_RAN_TO_COMPLETION)
            else:
                message = f"the answer to a retry (HTTP {status}) is not the stream that began"
                self._stream_failed(StructuredJobError(ResponseFailure.ERROR, message, None))
            return
        if status >= 400:
            self.response.failure(_failure(status, body))
        elif status in (200, 202):
            kind = ResponseSuccess.ACCEPTED if status == 202 else ResponseSuccess.OK
            if not body:
                self.response.success(kind)
                return
            content_type = answer.headers.get("content-type", "")
            data = json.loads(body) if "json" in content_type else body.decode("utf-8", "replace")
            self.response.success_with_data(kind, data)

    def feed(self, chunk: bytes) -> None:
        """Part of a streamed answer; what an earlier try delivered is skipped."""
        writer = self.writer
        if writer is None:
            return
        if self.diverged or self.again is not None:
            return
        if not self.structured:
            start = self.seen
            self.seen += len(chunk)
            if start < self.delivered:  # replayed: checked against what was shown
                self.replayed.update(chunk[: self.delivered - start])
                if self.seen < self.delivered or not self._same_as_shown():
                    return
                chunk = chunk[self.delivered - start :]
            if chunk:
                self.delivered += len(chunk)
                self._text(writer, chunk)
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.seen += 1
            if self.seen <= self.delivered:
                self.replayed.update(line + b"\n")
                if self.seen == self.delivered and not self._same_as_shown():
                    return
                continue
            value = json.loads(line)
            if isinstance(value, dict) and len(value) == 1 and "$error" in value:
                error = value["$error"]
                self._stream_failed(
                    StructuredJobError(
                        _code(error.get("code")), str(error.get("message", "")), error.get("data")
                    )
                )
                if self.again is not None:
                    return
            else:
                writer.write(value)
                self.shown.update(line + b"\n")
            self.delivered = self.seen

    def _same_as_shown(self) -> bool:
        """Whether this try's stream so far is what the Response was shown; if not, it
        fails (the job ran again, and its new run wrote something else)."""
        shown = self.shown.copy()
        shown.update(self.held)  # delivered, held back while it may begin the marker
        if self.replayed.digest() == shown.digest():
            return True
        self.diverged = True
        self._stream_failed(StructuredJobError(ResponseFailure.ERROR, DIVERGED, None))
        return False

    def _text(self, writer: ResponseWriter, data: bytes) -> None:
        """Write text, keeping back an end that may be the error marker: a marker ends the
        stream, so a marker line with more after it is data."""
        data = self.held + data
        start = data.rfind(_MARKER)
        if start != -1:
            line_end = data.find(b"\n", start + 1)
            if line_end != -1 and line_end + 1 < len(data):
                start = -1
        if start == -1:
            start = len(data) - _marker_start(data)
        self.held = data[start:]
        if start:
            writer.write(data[:start])
            self.shown.update(data[:start])

    def end(self) -> None:
        """The stream ended: what was kept back is the error marker, or data after all."""
        if self.diverged or self.again is not None:
            return
        if self.seen < self.delivered:  # a replay shorter than what was shown
            self.diverged = True
            self._stream_failed(StructuredJobError(ResponseFailure.ERROR, DIVERGED, None))
            return
        marker = _TEXT_MARKER.fullmatch(self.held)
        if marker is None:
            self._flush()
            return
        unshown, self.held = len(self.held), b""
        code, message = marker.groups()
        text = message.decode("utf-8", "replace")
        self._stream_failed(StructuredJobError(_code(code.decode()), text, None), unshown)

    def retry_answer_with(self, answer: httpx.Response, body: bytes) -> float | None:
        """`retry_answer`, but a 503 whose `body` says that the job was lost is the answer
        when following a job (a GET, or a stream that began): waiting will not bring the
        run back. Before a POST's stream began, it is retried: the POST runs the job again.
        """
        following = self.writer is not None or (self.first is not None and self.first[0] != "POST")
        if following and _is_lost(body):
            return None
        return self.retry_answer(answer)

    def next_request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[str, str, dict[str, str], bytes | None]:
        """The request of the next try: the first one again until a stream began, then a
        GET of the job's output.

        The GET follows the run whose stream began, to its end. If that run was lost (its
        server died), its replay ends with the lost marker; then the request is sent again,
        which runs the job again, and the new run's stream goes on from where the Response
        is only if its beginning is the same bytes as what the Response got (a SHA-256 of
        both). A stream that differs fails: the Response never gets two runs' output
        spliced into one.
        """
        if self.first is None:
            self.first = (method, path, headers, body)
        if self.again is not None:  # the lost run's stream ended: run it again
            self.again = None
            return self.first
        if self.writer is None or self.request_id is None:
            return method, path, headers, body
        keep = {k: v for k, v in headers.items() if k.lower() in ("accept", "authorization")}
        return "GET", f"/jobs/{self.request_id}/output", keep, None

    def retry_error(self, error: Exception) -> float:
        try:
            return super().retry_error(error)
        except ServerUnreachable:
            self._flush()  # what came of the stream is the Response's
            raise

    def interrupted(self) -> None:
        """The caller stops reading: what was kept back (most often a line's newline, which
        may begin the error marker) is the Response's, as far as anyone knows."""
        self._flush()

    def _flush(self) -> None:
        """Write what was kept back: no marker came after it."""
        held, self.held = self.held, b""
        if held and self.writer is not None:
            self.writer.write(held)
            self.shown.update(held)

    def _stream_failed(self, failed: JobError, unshown: int = 0) -> None:
        """The stream ended with `failed` (`unshown`: the marker's bytes, counted as
        delivered but never shown)."""
        if (
            failed.message == LOST_MESSAGE
            and self.first is not None
            and self.first[0] == "POST"
            and not self.diverged
        ):
            delay = self._next_try("the job was lost")
            if delay is not None:  # its run is lost: run it again (see `next_request`)
                self.again = delay
                self.delivered -= unshown
                return
        self._flush()
        stream_failed = getattr(self.response, "stream_failed", None)
        if callable(stream_failed):
            stream_failed(failed)


def _is_stream(answer: httpx.Response) -> bool:
    content_type = answer.headers.get("content-type", "")
    return answer.status_code == 202 and content_type.startswith(
        ("text/plain", "application/x-ndjson")
    )


def _code(value: Any) -> ResponseFailure:
    try:
        return ResponseFailure(value)
    except ValueError:
        return ResponseFailure.ERROR


def _failure(status: int, body: bytes) -> StructuredJobError:
    """The failure a 4xx or 5xx answer's JSON body says."""
    try:
        error = json.loads(body)
        return StructuredJobError(
            ResponseFailure(error["code"]), str(error["message"]), error.get("data")
        )
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
        return StructuredJobError(ResponseFailure.ERROR, message, None)


def _headers(token: str | None, accept: str) -> dict[str, str]:
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


STREAM_ACCEPT = "application/json;stream=true"


class _Base:
    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        tries: int = 5,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.tries = tries
        self.timeout = httpx.Timeout(timeout, read=None)

    def _start_request(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        *,
        id: RequestIdentifier | None,
        idempotency_key: str | None,
        accept: str,
    ) -> tuple[str, dict[str, str], bytes]:
        headers = _headers(self.token, accept)
        if idempotency_key is not None:
            RequestIdentifier.for_idempotency_key(idempotency_key)  # refused here if malformed
            headers["Idempotency-Key"] = idempotency_key
        else:
            # Made here, so every retry carries the same id and joins the first try's job.
            headers["X-Request-Id"] = str(id or RequestIdentifier.new())
        headers["Content-Type"] = "application/json"
        return f"/jobs/{name}", headers, json.dumps(dict(params or {})).encode()


class Client(_Base):
    """A synchronous client of a gearjobs server.

    Its reads block with no timeout (an answer may take as long as its job). CPython can miss
    a SIGINT that comes just before such a read begins, so Ctrl-C may then need pressing
    twice; AsyncClient, whose loop wakes on a signal, does not (the CLI uses it).
    """

    def __init__(self, base_url: str = DEFAULT_URL, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def run(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        response: Response,
        *,
        id: RequestIdentifier | None = None,
        idempotency_key: str | None = None,
        accept: str = STREAM_ACCEPT,
    ) -> str | None:
        """Run job `name` into `response`; return the request id the server used."""
        path, headers, body = self._start_request(
            name, params, id=id, idempotency_key=idempotency_key, accept=accept
        )
        return self._exchange("POST", path, headers, body, response)

    def attach(self, ident: str, response: Response, *, accept: str = STREAM_ACCEPT) -> None:
        """Follow the answer of job `ident` from its start into `response`."""
        headers = _headers(self.token, accept)
        self._exchange("GET", f"/jobs/{ident}/output", headers, None, response)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        """A GET with this client's token and retries (for /jobs and /jobs/{id})."""
        retries = _Retries(self.tries)
        while True:
            try:
                answer = self._http.get(
                    path, params=params, headers=_headers(self.token, "application/json")
                )
            except httpx.TransportError as exc:
                time.sleep(retries.retry_error(exc))
                continue
            delay = retries.retry_answer(answer)
            if delay is None:
                return answer
            time.sleep(delay)

    def _exchange(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        response: Response,
    ) -> str | None:
        exchange = _Exchange(response, tries=self.tries)
        try:  # stopped at any point, a wait between tries too: what was kept back is shown
            while True:
                method, path, headers, body = exchange.next_request(method, path, headers, body)
                try:
                    with self._http.stream(method, path, headers=headers, content=body) as answer:
                        busy = answer.read() if answer.status_code in RETRY_STATUSES else b""
                        delay = exchange.retry_answer_with(answer, busy)
                        if delay is None:
                            exchange.begin(answer)
                            if exchange.streaming:
                                for chunk in answer.iter_bytes():
                                    exchange.feed(chunk)
                                exchange.end()
                            else:
                                exchange.read_whole(answer, answer.read())
                            if exchange.again is None:
                                return exchange.request_id
                            delay = exchange.again  # the stream's run was lost: run it again
                except httpx.TransportError as exc:
                    delay = exchange.retry_error(exc)
                time.sleep(delay)
        except KeyboardInterrupt:
            exchange.interrupted()
            raise


class AsyncClient(_Base):
    """An asyncio client of a gearjobs server."""

    def __init__(self, base_url: str = DEFAULT_URL, **kwargs: Any) -> None:
        transport = kwargs.pop("transport", None)
        super().__init__(base_url, **kwargs)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def run(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        response: Response,
        *,
        id: RequestIdentifier | None = None,
        idempotency_key: str | None = None,
        accept: str = STREAM_ACCEPT,
    ) -> str | None:
        """Run job `name` into `response`; return the request id the server used."""
        path, headers, body = self._start_request(
            name, params, id=id, idempotency_key=idempotency_key, accept=accept
        )
        return await self._exchange("POST", path, headers, body, response)

    async def attach(self, ident: str, response: Response, *, accept: str = STREAM_ACCEPT) -> None:
        """Follow the answer of job `ident` from its start into `response`."""
        headers = _headers(self.token, accept)
        await self._exchange("GET", f"/jobs/{ident}/output", headers, None, response)

    async def _exchange(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        response: Response,
    ) -> str | None:
        exchange = _Exchange(response, tries=self.tries)
        try:  # stopped at any point, a wait between tries too: what was kept back is shown
            while True:
                method, path, headers, body = exchange.next_request(method, path, headers, body)
                stream = self._http.stream(method, path, headers=headers, content=body)
                try:
                    async with stream as answer:
                        status = answer.status_code
                        busy = await answer.aread() if status in RETRY_STATUSES else b""
                        delay = exchange.retry_answer_with(answer, busy)
                        if delay is None:
                            exchange.begin(answer)
                            if exchange.streaming:
                                async for chunk in answer.aiter_bytes():
                                    exchange.feed(chunk)
                                exchange.end()
                            else:
                                exchange.read_whole(answer, await answer.aread())
                            if exchange.again is None:
                                return exchange.request_id
                            delay = exchange.again  # the stream's run was lost: run it again
                except httpx.TransportError as exc:
                    delay = exchange.retry_error(exc)
                await asyncio.sleep(delay)
        except (KeyboardInterrupt, asyncio.CancelledError):
            exchange.interrupted()
            raise
