"""The ASGI application: Starlette, with the request that starts a job taken first."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ("GearjobsApp",)

Handler = Callable[[Request], Awaitable[Response]]

JOBS = "/jobs/"


class GearjobsApp(Starlette):
    """Starlette, except that `POST /jobs/{name}` goes straight to its handler.

    Starting a job is nearly every request a busy server gets; Starlette's two middleware
    layers, its router and its endpoint wrappers were a sixth of the app's own time on it.
    The route is the router's first anyway, and its handler answers refusals itself. The
    shortcut is taken only while the app is as `create_app` made it: the exception handlers
    are its two (for HTTPException, and for Exception: the server error), with no user
    middleware, no debug mode, no body size limit of Starlette's, and not mounted under a
    root path. Otherwise every request goes through Starlette as usual. Whether the app is
    as made is decided at its first request, as Starlette builds its middleware once.
    """

    job_handler: Handler | None = None
    shutdown_soon: Callable[[], None] | None = None
    """Once started: begins the dispatcher's close now, from any thread (the server calls it
    when told to stop, before it waits for open connections: running jobs get their close
    timeout while their streams are still open, and queued jobs are recorded lost at once)."""
    _shortcut: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            shortcut = self._shortcut
            if shortcut is None:
                shortcut = self._shortcut = self._as_made()
            handler = self.job_handler
            path: str = scope["path"]
            name = path[len(JOBS) :]
            if (
                shortcut
                and handler is not None
                and path.startswith(JOBS)
                and name
                and "/" not in name
                and not scope.get("root_path")
            ):
                scope["app"] = self
                scope["path_params"] = {"name": name}
                request: Request = Request(scope, receive, send)
                try:
                    response = await handler(request)
                except Exception as exc:
                    await self._handle(exc, request, scope, receive, send)
                    return
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _as_made(self) -> bool:
        handlers = self.exception_handlers
        return (
            len(handlers) == 2
            and HTTPException in handlers
            and Exception in handlers
            and not self.user_middleware
            and not self.debug
            and getattr(self, "max_body_size", None) is None  # Starlette >= 1.0
        )

    async def _handle(
        self, exc: Exception, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Answer `exc` as Starlette's ExceptionMiddleware, or else its ServerErrorMiddleware.

        An HTTPException goes to its handler; anything else, or an exception from that
        handler, to the server error handler, after whose answer it is raised again for the
        server to log, as Starlette does.
        """
        if isinstance(exc, HTTPException):
            try:
                response = await _call(self.exception_handlers[HTTPException], request, exc)
            except Exception as raised:
                exc = raised
            else:
                await response(scope, receive, send)
                return
        response = await _call(self.exception_handlers[Exception], request, exc)
        await response(scope, receive, send)
        raise exc


async def _call(handler: Any, request: Request, exc: Exception) -> Response:
    """Call an exception handler, async or not, as Starlette does."""
    call = handler
    while isinstance(call, functools.partial):
        call = call.func
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        response: Response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    return response
