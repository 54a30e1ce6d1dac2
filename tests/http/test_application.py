"""GearjobsApp takes `POST /jobs/{name}` before Starlette's middleware and router: same answers."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount

from gearjobs.dispatcher import Dispatcher
from gearjobs.examples import example_jobs
from gearjobs.http import create_app
from gearjobs.jobs import ExtensionRegistry, Job, JobExtensionFunc, NoJobForRequest

pytestmark = pytest.mark.parametrize("store", ["memory"], indirect=True)


class Teapot(Exception):
    pass


def exploding(request: Any) -> Job:
    name = getattr(request, "name", None)
    if name == "explode":
        raise RuntimeError("a broken extension")
    if name == "forbidden":
        raise HTTPException(403, "not for you")
    if name == "teapot":
        raise Teapot()
    if name == "http-500":
        raise HTTPException(500, "boom")
    raise NoJobForRequest()


@pytest.fixture
async def app(dispatcher: Dispatcher) -> Starlette:
    registry = ExtensionRegistry([JobExtensionFunc(exploding), example_jobs(node="n")])
    return create_app(dispatcher, registry)


def client_of(app: Any) -> httpx.AsyncClient:
    # As Starlette does, the server error handler answers and the error is raised again for
    # the server to log: the transport must not raise it in the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as c:
        yield c


async def test_an_unexpected_error_is_a_json_500_and_the_next_request_is_served(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    broken = await client.post("/jobs/explode", json={})
    assert broken.status_code == 500
    assert broken.json() == {"message": "internal server error", "code": "error"}
    assert "a broken extension" in caplog.text
    ok = await client.post("/jobs/echo", json={"n": 1})
    assert ok.status_code == 200 and ok.json() == {"echo": {"n": 1}}


async def test_paths_that_are_not_one_job_name_go_to_the_router(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/jobs/echo/more", json={})).status_code in (404, 405)
    assert (await client.post("/jobs/", json={})).status_code in (404, 405)
    assert (await client.post("/jobs", json={})).status_code == 405
    listing = await client.get("/jobs")
    assert listing.status_code == 200


async def test_middleware_a_user_adds_sees_the_requests_that_start_jobs(app: Starlette) -> None:
    seen: list[str] = []

    async def note(request: Request, call_next: RequestResponseEndpoint) -> Response:
        seen.append(request.url.path)
        response = await call_next(request)
        response.headers["X-Seen"] = "yes"
        return response

    app.add_middleware(BaseHTTPMiddleware, dispatch=note)
    async with client_of(app) as client:
        answer = await client.post("/jobs/echo", json={"n": 2})
    assert answer.status_code == 200 and answer.json() == {"echo": {"n": 2}}
    assert answer.headers["X-Seen"] == "yes"
    assert seen == ["/jobs/echo"]


async def test_mounted_under_a_path_it_answers_there(app: Starlette) -> None:
    outer = Starlette(routes=[Mount("/api", app=app)])
    async with client_of(outer) as client:
        answer = await client.post("/api/jobs/echo", json={"n": 3})
        assert answer.status_code == 200 and answer.json() == {"echo": {"n": 3}}
        assert (await client.post("/jobs/echo", json={})).status_code == 404


async def test_an_http_exception_gets_the_apps_handler(client: httpx.AsyncClient) -> None:
    answer = await client.post("/jobs/forbidden", json={})
    assert answer.status_code == 403
    assert answer.json() == {"message": "not for you", "code": "invalid-request"}


async def test_a_handler_a_user_adds_answers_its_exceptions(app: Starlette) -> None:
    def teapot(request: Request, exc: Exception) -> Response:  # a plain function, as allowed
        return JSONResponse({"tea": True}, status_code=418)

    app.add_exception_handler(Teapot, teapot)
    async with client_of(app) as client:
        answer = await client.post("/jobs/teapot", json={})
    assert answer.status_code == 418 and answer.json() == {"tea": True}


async def test_in_debug_mode_starlette_takes_every_request(app: Starlette) -> None:
    app.debug = True
    async with client_of(app) as client:
        ok = await client.post("/jobs/echo", json={"n": 4})
        broken = await client.post("/jobs/explode", json={})
    assert ok.status_code == 200 and ok.json() == {"echo": {"n": 4}}
    assert broken.status_code == 500 and "RuntimeError" in broken.text  # the debug page


async def test_a_500_handler_a_user_adds_answers_server_errors(app: Starlette) -> None:
    async def mine(request: Request, exc: Exception) -> Response:
        return JSONResponse({"mine": True}, status_code=500)

    app.add_exception_handler(500, mine)
    async with client_of(app) as client:
        broken = await client.post("/jobs/explode", json={})
        ok = await client.post("/jobs/echo", json={"n": 5})
        http_500 = await client.post("/jobs/http-500", json={})
    assert broken.status_code == 500 and broken.json() == {"mine": True}
    assert ok.status_code == 200
    # As in Starlette: an HTTPException goes to the HTTPException handler, whatever its status.
    assert http_500.status_code == 500 and http_500.json()["message"] == "boom"
