"""The baseline of bench/http.py: a bare Starlette JSON endpoint doing what echo does."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def echo(request: Request) -> JSONResponse:
    params = await request.json() if await request.body() else {}
    return JSONResponse({"echo": params})


app = Starlette(routes=[Route("/jobs/echo", echo, methods=["POST"])])
