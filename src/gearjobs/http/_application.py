"""The ASGI application: Starlette, with the request that starts a job taken first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
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
    The route is the router's first anyway, and its handler answers every refusal itself, so
    the path is the same: only unexpected errors need the answer the `Exception` handler
    gives (`server_error`). With middleware added by a user (`add_middleware`), or when the
    app is mounted under a root path, every request goes through Starlette as usual.
    """

    job_handler: Handler | None = None
    server_error: Callable[[Request, Exception], Awaitable[Response]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and self.job_handler is not None
            and not self.user_middleware
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
            if self.server_error is None:
                raise
            response = await self.server_error(request, exc)
        await response(scope, receive, send)
