"""GearjobsApp takes `POST /jobs/{name}` before Starlette's middleware and router: same answers."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from gearjobs.dispatcher import Dispatcher
from gearjobs.examples import example_jobs
from gearjobs.http import create_app
from gearjobs.jobs import ExtensionRegistry, Job, JobExtensionFunc, NoJobForRequest

pytestmark = pytest.mark.parametrize("store", ["memory"], indirect=True)


def exploding(request: Any) -> Job:
    if getattr(request, "name", None) == "explode":
        raise RuntimeError("a broken extension")
    raise NoJobForRequest()


@pytest.fixture
async def app(dispatcher: Dispatcher) -> Starlette:
    registry = ExtensionRegistry([JobExtensionFunc(exploding), example_jobs(node="n")])
    return create_app(dispatcher, registry)


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


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
