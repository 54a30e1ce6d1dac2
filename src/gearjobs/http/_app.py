"""The ASGI application: the HTTP API of gearjobs over a dispatcher and an extension registry."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles

from gearjobs._json import DECODER, lone_surrogate_in
from gearjobs.dispatcher import Dispatcher, JobHandle
from gearjobs.http._answer import answer, error_response, sse_answer
from gearjobs.http._application import GearjobsApp
from gearjobs.http._auth import Tokens
from gearjobs.http._metrics import CONTENT_TYPE_LATEST, Metrics
from gearjobs.http._negotiate import Mode, NotAcceptable, negotiate
from gearjobs.http._openapi import openapi_document
from gearjobs.http._routes import JobRoute
from gearjobs.http._status import recorded_status
from gearjobs.jobs import (
    ANONYMOUS,
    ERR_RAN_TO_COMPLETION,
    ExtensionRegistry,
    InvalidIdempotencyKey,
    InvalidRequestIdentifier,
    JobContext,
    JobError,
    JobRequest,
    NoJobForRequest,
    RequestIdentifier,
    ResponseFailure,
)
from gearjobs.store import JobKey, JobRecord, JobState

__all__ = ("create_app",)

logger = logging.getLogger("gearjobs.http")

MAX_LIST = 500
_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() takes "²" and other digits int() refuses
STATIC = Path(__file__).resolve().parent / "static"


class Refused(Exception):
    """Stops a request with a ready answer (a 4xx or 5xx with a JSON message)."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def _refuse(status: int, message: str, failure: ResponseFailure | None = None) -> Refused:
    failure = failure or (
        ResponseFailure.INVALID_REQUEST if status == 400 else ResponseFailure.NOT_FOUND
    )
    return Refused(error_response(failure, message, status=status))


def _ran_to_completion(headers: dict[str, str]) -> Response:
    return Response(status_code=204, headers={**headers, "X-Job-State": "ran-to-completion"})


def record_json(record: JobRecord) -> dict[str, Any]:
    """A job's record as the API shows it."""
    return {
        "id": str(record.key.id),
        "name": record.name,
        "user": record.key.user,
        "state": record.state.value,
        "run": record.run,
        "node": record.node,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "status": recorded_status(record),
        "kept": record.kept,
    }


class _Api:
    """The handlers of the API, sharing the dispatcher, registry, tokens and limits."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        registry: ExtensionRegistry,
        tokens: Tokens | None,
        body_limit: int,
        metrics: Metrics,
    ) -> None:
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.registry = registry
        self.tokens = tokens
        self.body_limit = body_limit

    # What every request is checked for

    def user(self, request: Request) -> str:
        if self.tokens is None:
            return ANONYMOUS
        headers = _headers(request)
        header = headers.get("authorization")
        if len(headers) != len(request.scope["headers"]):  # some header came more than once
            named = [n for n, _ in request.scope["headers"] if n.lower() == b"authorization"]
            if len(named) > 1:  # which names the user is not for the server to guess
                raise _refuse(400, "Authorization came more than once")
        if header is None:
            raise Refused(self._unauthorized("this server needs Authorization: Bearer <token>"))
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(self._unauthorized("Authorization must be 'Bearer <token>'"))
        user = self.tokens.user_for(token.strip())
        if user is None:
            raise Refused(self._unauthorized("the token is not known to this server"))
        return user

    @staticmethod
    def _unauthorized(message: str) -> Response:
        return error_response(
            ResponseFailure.INVALID_REQUEST,
            message,
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="gearjobs"'},
        )

    @staticmethod
    def mode(request: Request) -> Mode:
        headers = _headers(request)
        accept = headers.get("x-accept")
        if accept is None:
            accept = headers.get("accept")
        try:
            return negotiate(accept)
        except NotAcceptable as exc:
            raise _refuse(406, str(exc), ResponseFailure.NOT_ACCEPTABLE) from None

    @staticmethod
    def request_id(request: Request) -> RequestIdentifier:
        headers = _headers(request)
        given = headers.get("x-request-id")
        key = headers.get("idempotency-key")
        if given is not None and key is not None:
            raise _refuse(400, "send X-Request-Id or Idempotency-Key, not both")
        if len(headers) != len(request.scope["headers"]):  # some header came more than once
            _refuse_differing_repeats(request)
        if given is not None:
            try:
                return RequestIdentifier.parse(given)
            except InvalidRequestIdentifier as exc:
                raise _refuse(400, exc.message) from None
        if key is not None:
            try:
                return RequestIdentifier.for_idempotency_key(key)
            except InvalidIdempotencyKey as exc:
                raise _refuse(400, exc.message) from None
        return RequestIdentifier.new()

    @staticmethod
    def path_id(request: Request) -> RequestIdentifier:
        try:
            return RequestIdentifier.parse(request.path_params["id"])
        except InvalidRequestIdentifier as exc:
            raise _refuse(400, exc.message) from None

    async def params(self, request: Request) -> dict[str, Any]:
        length = _header(request, "content-length")
        if length is not None:
            if not _DIGITS.fullmatch(length):
                raise _refuse(400, "Content-Length must be a whole number")
            if int(length) > self.body_limit:
                raise self._too_large()
        coding = _header(request, "content-encoding")
        if coding is not None and coding.strip().lower() not in ("", "identity"):
            raise _refuse(
                415,
                f"Content-Encoding {coding[:40]!r} is not supported: send the JSON body as is",
                ResponseFailure.INVALID_REQUEST,
            )
        body = await self._body(request)
        if not body.strip():
            return {}
        try:
            text = body.decode(_encoding(body), "surrogatepass")
            value = DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            raise _refuse(400, f"the body is not valid JSON: {_short(exc)}") from None
        if not isinstance(value, dict):
            raise _refuse(400, "the body must be a JSON object of the job's parameters")
        if lone_surrogate_in(text, value):
            raise _refuse(400, "the body holds a lone UTF-16 surrogate escape")
        return value

    async def _body(self, request: Request) -> bytes:
        """The request's body, read from the ASGI channel (as `Request.stream` does, without
        an async generator a request), refused once it passes the limit."""
        receive = request.receive
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "http.request":
                chunk = message.get("body", b"")
                if chunk:
                    parts.append(chunk)
                    size += len(chunk)
                    if size > self.body_limit:
                        raise self._too_large()
                if not message.get("more_body", False):
                    break
            elif kind == "http.disconnect":
                raise ClientDisconnect()
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        # What Request.body() keeps (a private name of Starlette's), so that an exception
        # handler that reads the body gets it rather than waiting on a spent channel.
        request._body = body
        return body

    def _too_large(self) -> Refused:
        return _refuse(
            413,
            f"the body is larger than the limit of {self.body_limit} bytes",
            ResponseFailure.INVALID_REQUEST,
        )

    # Starting jobs

    async def run(
        self,
        request: Request,
        *,
        name: str,
        make_request: Callable[[str, Mapping[str, Any], JobContext], Any],
        route: str,
    ) -> Response:
        try:
            ident = self.request_id(request)
        except Refused as refused:
            self._count_refusal(refused)
            raise
        headers = {"X-Request-Id": str(ident)}
        try:
            user = self.user(request)
            mode = self.mode(request)
            offset = _resume_offset(request) if mode is Mode.SSE else 0
            context = JobContext(ident, user)
            try:
                params = await self.params(request)
            except Refused:
                # A bad body for a job that does not exist: the unknown name is the answer.
                if not self._knows(make_request(name, {}, context)):
                    raise _refuse(404, _no_job(name)) from None
                raise
            try:
                job = self.registry.job_for(make_request(name, params, context))
            except NoJobForRequest:
                raise _refuse(404, _no_job(name)) from None
            fingerprint = _fingerprint(route, params)
            started = time.perf_counter()
            handle = await self.dispatcher.dispatch(
                ident, job, context=context, fingerprint=fingerprint, name=name, detail=params
            )
            self.metrics.dispatch_latency.observe(time.perf_counter() - started)
            self.metrics.counted(handle, name)
        except Refused as refused:
            self._count_refusal(refused)
            refused.response.headers.update(headers)
            raise
        except JobError as exc:
            if exc is ERR_RAN_TO_COMPLETION:
                self.metrics.rejected_for("ran-to-completion")
                return _ran_to_completion(headers)
            self.metrics.rejected_for(exc.response_failure().value)
            return error_response(
                exc.response_failure(), exc.message, exc.response_data(), headers=headers
            )
        return await _answer_guarded(handle, mode, offset, headers)

    def _knows(self, job_request: Any) -> bool:
        """True when some extension recognises the request (even if it then refuses it)."""
        try:
            self.registry.job_for(job_request)
        except NoJobForRequest:
            return False
        except Exception:
            return True
        return True

    def _count_refusal(self, refused: Refused) -> None:
        reason = {401: "unauthorized", 404: "unknown-job", 406: "not-acceptable", 413: "too-large"}
        self.metrics.rejected_for(reason.get(refused.response.status_code, "invalid-request"))

    async def post_job(self, request: Request) -> Response:
        """`POST /jobs/{name}`, guarded here (one coroutine less than `guarded` would take)."""
        name = request.path_params["name"]
        try:
            return await self.run(
                request, name=name, make_request=JobRequest, route=f"POST /jobs/{name}"
            )
        except (Refused, JobError) as exc:
            return _refused(exc)

    def extension_route(self, route: JobRoute) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            path_params = {k: str(v) for k, v in request.path_params.items()}
            described = json.dumps(path_params, sort_keys=True)
            return await self.run(
                request,
                name=route.name,
                make_request=lambda _, params, context: route.parse(path_params, params, context),
                route=f"{route.method} {route.path} {described}",
            )

        return handle

    # Looking at jobs

    async def get_job(self, request: Request) -> Response:
        ident = self.path_id(request)
        headers = {"X-Request-Id": str(ident)}
        try:
            user = self.user(request)
        except Refused as refused:
            refused.response.headers.update(headers)
            raise
        try:
            record = await self.dispatcher.get(JobKey(user, ident))
        except JobError as exc:  # for example the store is unreachable: 503
            return _job_error(exc, headers)
        if record is None:
            return error_response(
                ResponseFailure.NOT_FOUND, f"no job with id {ident}", headers=headers
            )
        return JSONResponse(record_json(record), headers=headers)

    async def get_output(self, request: Request) -> Response:
        ident = self.path_id(request)
        headers = {"X-Request-Id": str(ident)}
        try:
            return await self._output(request, ident, headers)
        except Refused as refused:
            refused.response.headers.update(headers)
            raise
        except JobError as exc:  # for example the store is unreachable: 503
            return _job_error(exc, headers)

    async def _output(
        self, request: Request, ident: RequestIdentifier, headers: dict[str, str]
    ) -> Response:
        user = self.user(request)
        mode = self.mode(request)
        try:
            handle = await self.dispatcher.follow(JobKey(user, ident))
        except JobError as exc:
            if exc is ERR_RAN_TO_COMPLETION:
                return _ran_to_completion(headers)
            raise
        if handle is None:
            return error_response(
                ResponseFailure.NOT_FOUND, f"no job with id {ident}", headers=headers
            )
        offset = _resume_offset(request) if mode is Mode.SSE else 0
        return await _answer_guarded(handle, mode, offset, headers)

    async def list_jobs(self, request: Request) -> Response:
        user = self.user(request)
        query = request.query_params
        state = None
        if query.get("state"):
            try:
                state = JobState(query["state"])
            except ValueError:
                states = ", ".join(s.value for s in JobState)
                raise _refuse(400, f"state must be one of {states}") from None
        limit = 50
        if query.get("limit"):
            text = query["limit"]
            if not _DIGITS.fullmatch(text) or not 1 <= int(text[:6]) <= MAX_LIST:
                raise _refuse(400, f"limit must be a whole number from 1 to {MAX_LIST}")
            limit = int(text)
        before = _parse_cursor(query["cursor"]) if query.get("cursor") else None
        records = await self.dispatcher.list_records(
            user=user, state=state, name=query.get("name") or None, limit=limit, before=before
        )
        body: dict[str, Any] = {"jobs": [record_json(r) for r in records], "cursor": None}
        if len(records) == limit:
            last = records[-1]
            body["cursor"] = _make_cursor(last.created_at, str(last.key.id))
        return _with_request_id(JSONResponse(body))

    async def stats(self, request: Request) -> Response:
        self.user(request)
        queues = {
            queue.name: {
                "running": queue.running,
                "waiting": queue.waiting,
                "capacity": queue.capacity,
                "concurrent": queue.concurrent,
            }
            for queue in (self.dispatcher.fast, self.dispatcher.slow)
        }
        return JSONResponse({"node": self.dispatcher.node, "queues": queues})

    async def healthz(self, request: Request) -> Response:
        if self.dispatcher.closing:
            return error_response(ResponseFailure.UNAVAILABLE, "the server is shutting down")
        await self.dispatcher.store.ping()
        return JSONResponse({"status": "ok", "node": self.dispatcher.node})


def _no_job(name: str) -> str:
    """The 404 message for an unknown job name; a long name is cut, not echoed whole."""
    shown = repr(name) if len(name) <= 100 else f"{name[:100]!r}... ({len(name)} characters)"
    return f"no job named {shown}"


def _refused(exc: Refused | JobError) -> Response:
    """The answer to a request stopped by `exc`: a refusal's own, or a JobError's (for
    example StoreUnavailable: 503 with Retry-After)."""
    if isinstance(exc, Refused):
        return _with_request_id(exc.response)
    return _with_request_id(
        error_response(exc.response_failure(), exc.message, exc.response_data())
    )


def _with_request_id(response: Response) -> Response:
    """`response`, carrying X-Request-Id as every answer of a `/jobs…` route does: one that
    names no job (a listing, a request refused before its id was read) gets a new id."""
    if "x-request-id" not in response.headers:
        response.headers["X-Request-Id"] = str(RequestIdentifier.new())
    return response


def _job_error(exc: JobError, headers: dict[str, str]) -> Response:
    return error_response(exc.response_failure(), exc.message, exc.response_data(), headers=headers)


def _header(request: Request, name: str) -> str | None:
    """The first value of header `name` (lower case)."""
    return _headers(request).get(name)


def _refuse_differing_repeats(request: Request) -> None:
    """400 when X-Request-Id (or Idempotency-Key) came twice or more naming different ids:
    which of them names the job is not for the server to guess. The same id in two of its
    forms (32 hex, 22 or 24 base64 characters) is one id."""
    repeats = (b"x-request-id", "X-Request-Id"), (b"idempotency-key", "Idempotency-Key")
    for name, header in repeats:
        values: set[Any] = {value for n, value in request.scope["headers"] if n.lower() == name}
        if len(values) > 1 and name == b"x-request-id":
            try:
                values = {RequestIdentifier.parse(v.decode("latin-1")) for v in values}
            except InvalidRequestIdentifier as exc:
                raise _refuse(400, exc.message) from None
        if len(values) > 1:
            raise _refuse(400, f"{header} came more than once, with different values")


def _headers(request: Request) -> dict[str, str]:
    """The request's headers by lower-case name (the first of repeated ones), made once.

    Starlette's `request.headers.get` scans every header on each call; a request looks up
    five or six.
    """
    scope = request.scope
    headers: dict[str, str] | None = scope.get("gearjobs.headers")
    if headers is None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(scope["headers"])  # the first of repeated ones wins
        }
        scope["gearjobs.headers"] = headers
    return headers


def _resume_offset(request: Request) -> int:
    """Where a Server-Sent Events answer starts: right after the `Last-Event-ID` given."""
    last = (_header(request, "last-event-id") or "").strip()
    if not last:
        return 0
    if not _DIGITS.fullmatch(last) or len(last) > 18:
        raise _refuse(400, "Last-Event-ID must be the id of an event (a number)")
    return int(last) + 1


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""What `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)` does,
made once: json.dumps with options makes an encoder a call."""


def _canonical_encoder() -> Callable[[Any], str]:
    """`_CANONICAL.encode`, without its two Python-level calls a request: the C encoder that
    `JSONEncoder.iterencode` makes on every call, made once. That needs no check for cycles
    (its `markers`): parameters are parsed JSON, which has none."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return _CANONICAL.encode
    encode = make(
        None,  # markers: no check for cycles
        _CANONICAL.default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        None,  # indent
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan (the body's decoder refuses NaN and infinities anyway)
    )

    def canonical(value: Any) -> str:
        return "".join(encode(value, 0))

    return canonical


_canonical = _canonical_encoder()


def _fingerprint(route: str, params: Mapping[str, Any]) -> str:
    canonical = _canonical(params)
    digest = hashlib.sha256(f"{route}\n{canonical}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _encoding(body: bytes) -> str:
    """The encoding of a JSON body, as `json.detect_encoding` says; a body that starts with
    "{" followed by anything but a NUL byte (UTF-16 or UTF-32) is UTF-8 without asking."""
    if body[:1] == b"{" and body[1:2] != b"\x00":
        return "utf-8"
    return json.detect_encoding(body)


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)[:200]


def _allowed(routes: list[BaseRoute], request: Request) -> str:
    """The methods that the routes matching the request's path take (for a 405's Allow)."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))


def _make_cursor(created_at: float, ident: str) -> str:
    raw = json.dumps([created_at, ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, ident = json.loads(raw)
        # Exactly what `_make_cursor` writes: a finite time (not a bool) and a request id.
        if (
            type(created_at) in (int, float)
            and math.isfinite(created_at)
            and isinstance(ident, str)
            and len(ident) == 22
            and str(RequestIdentifier.parse(ident)) == ident
        ):
            return float(created_at), ident
    except (ValueError, TypeError, binascii.Error, RecursionError, JobError):
        pass
    raise _refuse(400, "cursor is not one this server gave out")


def create_app(
    dispatcher: Dispatcher,
    registry: ExtensionRegistry,
    *,
    tokens: Tokens | None = None,
    body_limit: int = 100 * 1024,
    close_timeout: float = 30.0,
    extra_routes: list[Route] | None = None,
) -> Starlette:
    """The gearjobs HTTP API as an ASGI application.

    Its lifespan starts the dispatcher and, on shutdown, closes it (running jobs get
    `close_timeout` seconds) and then its store.
    """
    metrics = Metrics(dispatcher)
    dispatcher.observers.append(metrics)
    api = _Api(dispatcher, registry, tokens, body_limit, metrics)

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except (Refused, JobError) as exc:
                return _refused(exc)

        return endpoint

    job_routes: list[JobRoute] = []
    for extension in registry.extensions:
        offer = getattr(extension, "http_routes", None)
        if callable(offer):
            job_routes.extend(offer())
    from gearjobs import __version__

    document = openapi_document(
        registry, job_routes, secured=tokens is not None, version=__version__
    )

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def metrics_endpoint(request: Request) -> Response:
        api.user(request)  # job names and counts are the users' business: token needed
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def dashboard(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    start_job = api.post_job  # guarded itself
    routes: list[BaseRoute] = [
        # First: starting a job is the common request (routes are tried in order). GearjobsApp
        # takes it even before the middleware and the router.
        Route("/jobs/{name}", start_job, methods=["POST"]),
        Route("/", dashboard, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/stats", guarded(api.stats), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", guarded(metrics_endpoint), methods=["GET"]),
        Route("/healthz", guarded(api.healthz), methods=["GET"]),
        Route("/jobs", guarded(api.list_jobs), methods=["GET"]),
        Route("/jobs/{id}", guarded(api.get_job), methods=["GET"]),
        Route("/jobs/{id}/output", guarded(api.get_output), methods=["GET"]),
    ]
    for route in job_routes:
        routes.append(
            Route(route.path, guarded(api.extension_route(route)), methods=[route.method])
        )
    routes.extend(extra_routes or [])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if isinstance(app, GearjobsApp):
            loop = asyncio.get_running_loop()

            def shutdown_soon() -> None:  # from any thread (a signal handler, say)
                if not loop.is_closed():
                    loop.call_soon_threadsafe(dispatcher.begin_close, close_timeout)

            app.shutdown_soon = shutdown_soon
        await dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.close(timeout=close_timeout)
            await dispatcher.store.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # pragma: no cover - registered for it only
            raise exc
        failure = (
            ResponseFailure.NOT_FOUND
            if exc.status_code == 404
            else (ResponseFailure.INVALID_REQUEST)
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method some route takes here, not the first's
            headers["Allow"] = _allowed(routes, request)
        refused = error_response(failure, str(exc.detail), status=exc.status_code, headers=headers)
        return _with_request_id(refused) if request.url.path.startswith("/jobs") else refused

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        failed = error_response(ResponseFailure.ERROR, "internal server error")
        return _with_request_id(failed) if request.url.path.startswith("/jobs") else failed

    app = GearjobsApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.job_handler = start_job
    # An API answers what it was asked: `/jobs/` is a 404, not a redirect to `/jobs`.
    app.router.redirect_slashes = False
    return app


async def _answer_guarded(
    handle: JobHandle, mode: Mode, offset: int, headers: dict[str, str]
) -> Response:
    """The answer in `mode`; if making it fails (a bug, or a job's own `write_table_to`), a
    500 that keeps the request's id and its connection, instead of an exception for the
    server (which would close the connection after its own 500)."""
    try:
        if mode is Mode.SSE:
            return await sse_answer(handle, offset, headers)
        return await answer(handle, mode, headers)
    except Refused:
        raise
    except JobError as exc:  # for example StoreUnavailable (503): no bug, and retried
        return error_response(
            exc.response_failure(), exc.message, exc.response_data(), headers=headers
        )
    except Exception:
        logger.exception("the answer of job %s could not be made", handle.key)
        return error_response(
            ResponseFailure.ERROR, "the job's answer could not be made", headers=headers
        )
