"""`hold_answers`: a job's end reaches its clients only once the store has written it."""

import asyncio
import contextlib
import sqlite3
import uuid
from pathlib import Path

import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.jobs import ClientResponse, RequestIdentifier, SimpleError
from gearjobs.jobs import ResponseFailure as F
from gearjobs.store import Chunk, JobKey, JobState, RedisStore, SQLiteStore, Succeeded

from ..redis_server import RedisServer
from .helpers import DataJob, Gate, StreamJob
from .test_once_per_id import Refusing
from .test_queues import HeldStore, RefusingStore


async def test_by_default_an_answer_goes_out_once_the_store_has_it() -> None:
    store = HeldStore()
    async with Dispatcher(store=store) as dispatcher:  # hold_answers=True is the default
        asyncio.get_running_loop().call_later(30, store.release)  # a failure must not hang
        ident = RequestIdentifier.new()
        response = ClientResponse()
        handle = await dispatcher.dispatch(ident, DataJob("kept"), response)
        waiting = asyncio.ensure_future(handle.wait())
        await asyncio.wait_for(store.asked.wait(), 10)  # the job ran, its write was asked
        await asyncio.sleep(0.01)  # time for an answer that did not wait
        assert not waiting.done() and response.data is None
        store.release()
        await waiting
        assert response.data == "kept"
        stored = await store.get(JobKey("anonymous", ident))
        assert stored is not None and stored.state is JobState.SUCCEEDED


async def test_a_held_stream_flows_live_and_only_its_end_waits_for_the_store() -> None:
    store = HeldStore()
    async with Dispatcher(store=store, hold_answers=True) as dispatcher:
        asyncio.get_running_loop().call_later(30, store.release)
        handle = await dispatcher.dispatch(RequestIdentifier.new(), StreamJob(3, 0))
        seen = []
        reader = handle.follow()
        for _ in range(4):  # the head and three chunks, before the store has anything
            seen.append(await asyncio.wait_for(anext(reader), 10))
        assert isinstance(seen[0], Succeeded)
        assert seen[1:] == [Chunk(b"line 0\n"), Chunk(b"line 1\n"), Chunk(b"line 2\n")]
        end = asyncio.ensure_future(anext(reader))
        await asyncio.wait_for(store.asked.wait(), 10)
        await asyncio.sleep(0.01)
        assert not end.done()
        store.release()
        await asyncio.wait_for(end, 10)


async def test_an_answer_the_store_never_took_is_not_given_and_a_retry_runs_again() -> None:
    store = RefusingStore(refusals=2)
    dispatcher = Dispatcher(store=store, hold_answers=True)
    dispatcher.WRITE_TRIES = 2
    async with dispatcher:
        ident, job = RequestIdentifier.new(), DataJob("never given")
        first = ClientResponse()
        await (await dispatcher.dispatch(ident, job, first))
        assert first.failed and first.data is None
        assert first.error is not None and first.error.response_failure() is F.UNAVAILABLE
        # As for any answer the store refused to the end: the next request finds the record
        # unfinished, records it lost and answers so (503), and the one after runs the job.
        with pytest.raises(SimpleError) as lost:
            await dispatcher.dispatch(ident, job, ClientResponse())
        assert lost.value.response_failure() is F.UNAVAILABLE
        again = ClientResponse()
        await (await dispatcher.dispatch(ident, job, again))
        assert again.data == "never given" and job.runs == 2


async def test_a_held_answer_the_store_refused_goes_out_once_a_later_try_writes_it() -> None:
    store = RefusingStore(refusals=2)  # the first two final writes fail (a full disk)
    async with Dispatcher(store=store) as dispatcher:
        ident, job = RequestIdentifier.new(), DataJob("kept")
        first, repeat = ClientResponse(), ClientResponse()
        handle = await dispatcher.dispatch(ident, job, first)
        joined = await dispatcher.dispatch(ident, job, repeat)
        answered = asyncio.ensure_future(handle.wait())
        tries_when_answered: list[int] = []  # the retries are 0.1 s apart, far more than a turn
        answered.add_done_callback(lambda _: tries_when_answered.append(store.tries))
        async with asyncio.timeout(10):
            await asyncio.gather(answered, joined.wait())
        assert tries_when_answered == [3], "the answer went out with the write that was made"
        assert (first.data, repeat.data, job.runs) == ("kept", "kept", 1)
        stored = await store.get(JobKey("anonymous", ident))
        assert stored is not None and stored.state is JobState.SUCCEEDED


async def test_without_holding_the_answer_goes_out_before_the_write() -> None:
    store = HeldStore()
    async with Dispatcher(store=store, hold_answers=False) as dispatcher:
        asyncio.get_running_loop().call_later(30, store.release)
        response = ClientResponse()
        await asyncio.wait_for(
            await dispatcher.dispatch(RequestIdentifier.new(), DataJob("early"), response), 10
        )
        assert response.data == "early" and store.held
        store.release()


@pytest.mark.parametrize("hold", [True, False])
async def test_with_sqlite_every_held_answer_is_in_the_file_when_it_is_given(
    tmp_path: Path, hold: bool
) -> None:
    """Read by another connection, as a server restarted after a crash would."""
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    # Not held, the answers' batch waits for its timer: long here, so that a slow box does
    # not run it before the file is read (it ran within 5 ms, and once before the read).
    store.WRITE_BEHIND = 3600.0
    try:
        async with Dispatcher(store=store, hold_answers=hold) as dispatcher:
            ids = [RequestIdentifier.new() for _ in range(20)]
            handles = [await dispatcher.dispatch(i, DataJob(str(i), fast=True)) for i in ids]
            await asyncio.gather(*(h.wait() for h in handles))
            with contextlib.closing(sqlite3.connect(path)) as other:
                (written,) = other.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'"
                ).fetchone()
            # Not held, the answers went out before their batch.
            assert written == (20 if hold else 0)
    finally:
        await store.close()


async def test_while_its_answer_is_held_a_job_still_reads_as_running() -> None:
    store = HeldStore()
    async with Dispatcher(store=store, hold_answers=True) as dispatcher:
        asyncio.get_running_loop().call_later(30, store.release)
        ident = RequestIdentifier.new()
        key = JobKey("anonymous", ident)
        handle = await dispatcher.dispatch(ident, DataJob("kept"))
        await asyncio.wait_for(store.asked.wait(), 10)
        live = await dispatcher.get(key)
        assert live is not None
        assert (live.state, live.finished_at, live.success) == (JobState.RUNNING, None, None)
        store.release()
        await handle
        done = await dispatcher.get(key)
        assert done is not None and done.state is JobState.SUCCEEDED


async def test_a_join_asking_for_a_rerun_of_a_held_job_waits_for_its_write_and_reruns() -> None:
    store = HeldStore()
    async with Dispatcher(store=store, hold_answers=True) as dispatcher:
        asyncio.get_running_loop().call_later(30, store.release)
        ident = RequestIdentifier.new()
        first = Refusing()
        handle = await dispatcher.dispatch(ident, first)
        await asyncio.wait_for(store.asked.wait(), 10)
        second = Refusing()
        joining = asyncio.ensure_future(dispatcher.dispatch(ident, second))
        await asyncio.sleep(0)
        store.release()
        rerun = await asyncio.wait_for(joining, 10)
        await handle
        await rerun
        assert second.consulted == [(first, True)], "consulted as finished"
        assert (first.runs, second.runs) == (1, 1)


async def test_on_redis_a_held_answer_is_not_given_when_the_job_was_marked_lost_meanwhile(
    redis_server: RedisServer,
) -> None:
    """Another node marked the job lost (its lease ran out, say while Redis was away): the
    final write is refused, and the clients get the lost answer, not one the store lacks."""
    prefix = f"h{uuid.uuid4().hex[:12]}"
    store = RedisStore(redis_server.url, prefix=prefix)
    other = RedisStore(redis_server.url, prefix=prefix)
    try:
        async with Dispatcher(store=store, hold_answers=True, node="a") as dispatcher:
            gate = Gate()
            ident, job = RequestIdentifier.new(), DataJob("never given", gate)
            response = ClientResponse()
            handle = await dispatcher.dispatch(ident, job, response)
            await asyncio.wait_for(job.started.wait(), 10)
            await other.recover("a", 5.0)  # node a is declared gone: its job is lost
            gate.open()
            await asyncio.wait_for(handle.wait(), 10)
            assert response.failed and response.data is None
            assert response.error is not None
            assert response.error.response_failure() is F.UNAVAILABLE
            stored = await other.get(JobKey("anonymous", ident))
            assert stored is not None and stored.state is JobState.LOST
            again = ClientResponse()
            await asyncio.wait_for(await dispatcher.dispatch(ident, job, again), 10)
            assert again.data == "never given" and job.runs == 2
    finally:
        await store.close()
        await other.close()
