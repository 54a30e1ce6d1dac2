import asyncio

import pytest

from gearjobs.dispatcher import LOST_MESSAGE, Dispatcher
from gearjobs.jobs import ClientResponse, JobError, RequestIdentifier, Response, ResponseFailure
from gearjobs.store import Body, Failed, JobKey, JobState, MemoryStore

from .helpers import OK, BlockingJob, DataJob, Gate

LOST = Failed(ResponseFailure.UNAVAILABLE, LOST_MESSAGE, {"state": "lost"})


async def test_close_stops_intake() -> None:
    dispatcher = Dispatcher()
    await dispatcher.start()
    await dispatcher.close()
    with pytest.raises(JobError) as caught:
        await dispatcher.dispatch(RequestIdentifier.new(), DataJob(1))
    assert caught.value.response_failure() is ResponseFailure.UNAVAILABLE


async def test_running_jobs_finish_within_the_timeout() -> None:
    store = MemoryStore()
    dispatcher = Dispatcher(store=store)
    await dispatcher.start()
    gate = Gate()
    job = DataJob("finished", gate)
    ident = RequestIdentifier.new()
    handle = await dispatcher.dispatch(ident, job)
    await job.started.wait()
    closing = asyncio.create_task(dispatcher.close(timeout=30))
    await asyncio.sleep(0)
    gate.open()
    await closing
    record = await store.get(JobKey("anonymous", ident))
    assert record is not None and record.state is JobState.SUCCEEDED
    terminal = await handle
    assert not isinstance(terminal, Failed)


async def test_leftovers_are_recorded_lost_and_their_joiners_see_the_end() -> None:
    store = MemoryStore()
    dispatcher = Dispatcher(store=store, concurrent=1, queue_slow=4)
    await dispatcher.start()
    stuck_gate = Gate()
    wrote = asyncio.Event()

    class Stuck:
        async def execute(self, response: Response) -> None:
            writer = response.success_with_write(OK, True, False)
            writer.write("partial\n")
            wrote.set()
            await stuck_gate.wait()

    running_id, queued_id = RequestIdentifier.new(), RequestIdentifier.new()
    running = await dispatcher.dispatch(running_id, Stuck())
    queued = await dispatcher.dispatch(queued_id, DataJob("never"))
    joiner = ClientResponse()
    await dispatcher.dispatch(running_id, Stuck(), joiner)
    await wrote.wait()
    await dispatcher.close(timeout=0.05)
    assert await running == LOST
    assert await queued == LOST
    for ident in (running_id, queued_id):
        record = await store.get(JobKey("anonymous", ident))
        assert record is not None and record.state is JobState.LOST
    assert joiner.data.getvalue() == b"partial\n"
    assert joiner.error is not None and joiner.error.message == LOST_MESSAGE
    # The running job's answer is the stream it began (ending with the failure); the queued
    # one has none.
    began = await store.get(JobKey("anonymous", running_id))
    never = await store.get(JobKey("anonymous", queued_id))
    assert began is not None and (began.success, began.body) == (OK, Body.TEXT)
    assert never is not None and (never.success, never.body) == (None, None)


async def test_a_blocked_sync_job_is_recorded_lost_when_the_timeout_passes() -> None:
    store = MemoryStore()
    dispatcher = Dispatcher(store=store)
    await dispatcher.start()
    gate = Gate()
    job = BlockingJob(gate)
    ident = RequestIdentifier.new()
    handle = await dispatcher.dispatch(ident, job)
    await job.started.wait()
    await dispatcher.close(timeout=0.05)
    assert await handle == LOST
    gate.open()  # let the abandoned thread end


async def test_a_lost_job_runs_again_when_its_id_is_retried_after_a_restart() -> None:
    store = MemoryStore()
    first = Dispatcher(store=store, node="node-a")
    await first.start()
    gate = Gate()
    ident = RequestIdentifier.new()
    await first.dispatch(ident, BlockingJob(gate), fingerprint="job:1")
    await first.close(timeout=0.01)
    gate.open()
    async with Dispatcher(store=store, node="node-a") as second:
        retry = DataJob("second run")
        response = ClientResponse()
        handle = await second.dispatch(ident, retry, response, fingerprint="job:1")
        await handle
    assert retry.runs == 1
    assert response.data == "second run"
    record = await store.get(JobKey("anonymous", ident))
    assert record is not None and record.state is JobState.SUCCEEDED and record.run == 2


async def test_restart_marks_the_unfinished_jobs_of_this_node_lost() -> None:
    store = MemoryStore()
    crashed = Dispatcher(store=store, node="node-b")
    await crashed.start()
    gate = Gate()
    ident = RequestIdentifier.new()
    await crashed.dispatch(ident, BlockingJob(gate))
    # No close(): as if the process died, and its hold on the store with it (as a dead
    # process's lock on a SQLite file goes). A new dispatcher on the same node recovers.
    store.detach(crashed)
    async with Dispatcher(store=store, node="node-b"):
        record = await store.get(JobKey("anonymous", ident))
        assert record is not None and record.state is JobState.LOST
    gate.open()
    await crashed.close(timeout=1)
