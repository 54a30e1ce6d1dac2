"""One live process per node name on a shared Redis: a node that starts marks its name's
unfinished jobs lost, so a second process under a name in use must not start."""

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.jobs import ClientResponse, RequestIdentifier
from gearjobs.store import JobKey, JobState, NameTaken, RedisStore

from ..dispatcher.helpers import DataJob, Gate
from ..redis_server import RedisServer
from ..servers import ServerProcess


async def test_a_second_dispatcher_under_a_name_in_use_is_refused_and_loses_nothing(
    redis_server: RedisServer,
) -> None:
    prefix = f"names{uuid.uuid4().hex[:8]}"
    first_store = RedisStore(redis_server.url, prefix=prefix, lease=0.6)
    second_store = RedisStore(redis_server.url, prefix=prefix, lease=0.6)
    gate = Gate()
    asyncio.get_running_loop().call_later(30, gate.open)  # a failure must not hang
    async with Dispatcher(store=first_store, node="twin") as first:
        ident, job = RequestIdentifier.new(), DataJob("finished", gate)
        response = ClientResponse()
        handle = await first.dispatch(ident, job, response)
        await asyncio.wait_for(job.started.wait(), 10)
        second = Dispatcher(store=second_store, node="twin")
        with pytest.raises(NameTaken, match="serves as node 'twin'"):
            await second.start()
        # The refused start marked nothing lost: the running job finishes and is recorded.
        record = await second_store.get(JobKey("anonymous", ident))
        assert record is not None and record.state is JobState.RUNNING
        gate.open()
        await handle
        assert response.data == "finished" and not response.failed
        record = await second_store.get(JobKey("anonymous", ident))
        assert record is not None and record.state is JobState.SUCCEEDED
    # Closed, the first lets the name go: a process under it starts, and finds no leftovers.
    async with Dispatcher(store=second_store, node="twin"):
        record = await second_store.get(JobKey("anonymous", ident))
        assert record is not None and record.state is JobState.SUCCEEDED
    await first_store.close()
    await second_store.close()


def test_gearjobs_serve_under_a_node_name_in_use_exits_with_one_line(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    store = f"{redis_server.url}?prefix=names{uuid.uuid4().hex[:8]}"
    args = ("--examples", "--store", store, "--node", "web-1")
    with ServerProcess(*args, cwd=tmp_path) as node:
        ident = str(RequestIdentifier.new())
        body = {"seconds": 1, "lines": 2}
        started = httpx.post(f"{node.url}/jobs/sleep", json=body, headers={"X-Request-Id": ident})
        assert started.status_code == 204  # running in the background
        twin = ServerProcess(*args, cwd=tmp_path, log_dir=tmp_path / "twin")
        try:
            with pytest.raises(RuntimeError, match="exited with 1") as refused:
                twin.start()
        finally:
            twin.kill()
        assert "another gearjobs process serves as node 'web-1'" in str(refused.value)
        assert "Traceback" not in str(refused.value)
        # The running job was not marked lost by the refused start: its stream ends well.
        replay = httpx.get(
            f"{node.url}/jobs/{ident}/output",
            headers={"Accept": "text/plain;stream=true"},
            timeout=30,
        )
        assert replay.status_code == 202
        assert replay.text == "tick 1\ntick 2\n"
