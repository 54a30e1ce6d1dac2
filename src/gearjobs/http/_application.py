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
    The route is the router's first anyway, and its handler answers refusals itself; an
    exception it raises goes to the app's exception handlers as Starlette's middleware would
    send it (`_handle`). With middleware added by a user (`add_middleware`), in debug mode, or
    when the app is mounted under a root path, every request goes through Starlette as usual.
    """

    job_handler: Handler | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and self.job_handler is not None
            and not self.user_middleware
            and not self.debug
            and not scope.get("root_path")
        ):
            path: str = scope["path"]
            name = path[len(JOBS) :]
            if path.startswith(JOBS) and name and "/" not in name:
                scope["app"] = self
                scope["path_params"] = {"name": name}
                await self._start_job(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _start_job(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.job_handler is not None
        request: Request = Request(scope, receive, send)
        try:
            response = await self.job_handler(request)
        except Exception as exc:
            await self._handle(exc, request, scope, receive, send)
            return
        await response(scope, receive, send)

    async def _handle(
        self, exc: Exception, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Answer `exc` as Starlette's ExceptionMiddleware, or else its ServerErrorMiddleware.

        The handler of the exception's status (an HTTPException) or of its nearest class, not
        counting `Exception`; else the server error handler (500 or `Exception`), after which
        the exception is raised again for the server to log, as Starlette does.
        """
        handlers = self.exception_handlers
        handler: Any = None
        if isinstance(exc, HTTPException):
            handler = handlers.get(exc.status_code)
        if handler is None:
            for cls in type(exc).__mro__:
                if cls is Exception:
                    break
                handler = handlers.get(cls)
                if handler is not None:
                    break
        server_error = handler is None
        if server_error:
            handler = handlers.get(500) or handlers.get(Exception)
            if handler is None:
                raise exc
        call: Any = handler
        while isinstance(call, functools.partial):
            call = call.func
        if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
            getattr(call, "__call__", None)  # noqa: B004 - an object with an async __call__
        ):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if response is not None:
            await response(scope, receive, send)
        if server_error:
            raise exc
