import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.examples import example_jobs
from gearjobs.http import Tokens, create_app
from gearjobs.jobs import (
    ExtensionRegistry,
    JobSet,
    Params,
    Response,
    ResponseFailure,
    ResponseSuccess,
    SimpleError,
)
from gearjobs.store import Store


class SelfRenderedTable:
    """Data that is no JSON value, and renders itself as a table."""

    def write_table_to(self, out: Any) -> None:
        out.write("name  size\na     1\n")


class BrokenTable:
    """Data that fails to render itself as a table."""

    def write_table_to(self, out: Any) -> None:
        raise RuntimeError("the table's own code is broken")


SPLIT_TEXT = "héllo wörld ✓ 日本語 🎉\n"


def test_jobs() -> JobSet:
    """Jobs that show the answers the example jobs do not."""
    jobs = JobSet()

    @jobs.job("accepted-data", fast=True)
    def accepted_data(params: Params, response: Response) -> None:
        response.success_with_data(ResponseSuccess.ACCEPTED, {"queued": True})

    @jobs.job("accepted-none", fast=True)
    def accepted_none(params: Params, response: Response) -> None:
        response.success(ResponseSuccess.ACCEPTED)

    @jobs.job("nothing", fast=True)
    async def nothing(params: Params, response: Response) -> None:
        response.write_pending_success("Note", "kept")

    @jobs.job("rows", fast=True)
    async def rows(params: Params, response: Response) -> None:
        response.success_with_data(
            ResponseSuccess.OK, [{"name": "a", "size": 1}, {"name": "bb", "size": 22}]
        )

    @jobs.job("stream-then-fail")
    async def stream_then_fail(params: Params, response: Response) -> None:
        writer = response.success_with_write(ResponseSuccess.OK, True, params.boolean("events"))
        writer.write({"n": 1} if params.boolean("events") else "one\n")
        raise SimpleError(ResponseFailure.NOT_FOUND, "the source went away")

    @jobs.job("raw-file-name")
    async def raw_file_name(params: Params, response: Response) -> None:
        # A name read from a disk, decoded with surrogateescape: not valid as UTF-8 text.
        name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
        events = params.boolean("events")
        writer = response.success_with_write(ResponseSuccess.OK, True, events)
        writer.write({"file": name} if events else "reading\n")
        raise SimpleError(ResponseFailure.NOT_FOUND, f"cannot read {name}")

    @jobs.job("pending-then-fail", fast=True)
    async def pending_then_fail(params: Params, response: Response) -> None:
        response.write_pending_success("Leaked", "never")
        raise SimpleError(ResponseFailure.NOT_FOUND, "gone")

    @jobs.job("pending-after-success", fast=True)
    async def pending_after_success(params: Params, response: Response) -> None:
        response.success_with_data(ResponseSuccess.OK, "sent")
        response.write_pending_success("Late", "never")

    @jobs.job("opaque-table", fast=True)
    async def opaque_table(params: Params, response: Response) -> None:
        response.success_with_data(ResponseSuccess.OK, SelfRenderedTable())

    @jobs.job("broken-table", fast=True)
    async def broken_table(params: Params, response: Response) -> None:
        response.success_with_data(ResponseSuccess.OK, BrokenTable())

    @jobs.job("data", fast=True)
    async def data(params: Params, response: Response) -> None:
        response.success_with_data(ResponseSuccess.OK, params["value"])

    @jobs.job("split-text")
    async def split_text(params: Params, response: Response) -> None:
        # UTF-8 text written `size` bytes at a time: characters split between writes.
        response.write_pending_success("Text-Size", len(SPLIT_TEXT.encode()))
        writer = response.success_with_write(ResponseSuccess.OK, True, False)
        encoded, size = SPLIT_TEXT.encode(), params.integer("size", 1)
        for i in range(0, len(encoded), size):
            writer.write(encoded[i : i + size])
            await asyncio.sleep(0)  # one chunk each: writes of one turn may be joined

    @jobs.job("pending", fast=True)
    async def pending(params: Params, response: Response) -> None:
        response.write_pending_success(params.string("name"), params["value"])
        response.success_with_data(ResponseSuccess.OK, "sent")

    return jobs


def make_registry() -> ExtensionRegistry:
    return ExtensionRegistry([example_jobs(node="test-node"), test_jobs()])


@pytest.fixture
async def dispatcher(store: Store) -> AsyncIterator[Dispatcher]:
    d = Dispatcher(store=store, concurrent=4, queue_fast=64, queue_slow=16)
    await d.start()
    yield d
    await d.close(timeout=0.1)  # jobs a test left running are recorded lost


@pytest.fixture
async def client(dispatcher: Dispatcher) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(dispatcher, make_registry())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
async def authed(dispatcher: Dispatcher) -> AsyncIterator[httpx.AsyncClient]:
    tokens = Tokens({"alice-token": "alice", "bob-token": "bob"})
    app = create_app(dispatcher, make_registry(), tokens=tokens)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c
