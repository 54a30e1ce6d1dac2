import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.jobs import (
    ClientResponse,
    GearjobsError,
    JobError,
    RequestIdentifier,
    Response,
    ResponseSuccess,
    StructuredJobError,
)
from gearjobs.jobs import ResponseFailure as F
from gearjobs.store import (
    Entry,
    Failed,
    JobKey,
    JobRecord,
    JobState,
    MemoryStore,
    SQLiteStore,
    Store,
)

from .helpers import OK, BlockingJob, DataJob, Gate


async def test_a_slow_queue_full_of_blocking_jobs_does_not_delay_a_fast_job() -> None:
    async with Dispatcher(concurrent=2, queue_slow=4, queue_fast=4) as dispatcher:
        gate = Gate()
        blockers = [BlockingJob(gate) for _ in range(6)]  # 2 running + 4 waiting: slow is full
        handles = [await dispatcher.dispatch(RequestIdentifier.new(), b) for b in blockers[:2]]
        await blockers[0].started.wait()
        await blockers[1].started.wait()
        handles += [await dispatcher.dispatch(RequestIdentifier.new(), b) for b in blockers[2:]]
        with pytest.raises(JobError) as caught:
            await dispatcher.dispatch(RequestIdentifier.new(), BlockingJob(gate))
        assert caught.value.response_failure() is F.RATE_LIMIT
        fast = BlockingJob(Gate(), fast=True)
        fast.gate.open()
        response = ClientResponse()
        await (await dispatcher.dispatch(RequestIdentifier.new(), fast, response))
        assert response.data == "unblocked"
        assert sum(b.runs for b in blockers) == 2, "the slow jobs are still blocked"
        gate.open()
        await asyncio.gather(*(h.wait() for h in handles))


async def test_a_sync_job_runs_in_a_worker_thread_and_the_loop_keeps_running(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    job = BlockingJob(gate)
    handle = await dispatcher.dispatch(RequestIdentifier.new(), job)
    await job.started.wait()
    # The job's thread is blocked; the event loop still serves this coroutine and others.
    ticks = 0
    for _ in range(10):
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 10
    quick = ClientResponse()
    await (await dispatcher.dispatch(RequestIdentifier.new(), DataJob("on the loop"), quick))
    assert quick.data == "on the loop"
    gate.open()
    await handle
    assert job.thread is not None and job.thread != threading.get_ident()


async def test_an_async_job_runs_on_the_event_loop(dispatcher: Dispatcher) -> None:
    seen: list[int] = []

    class OnLoop:
        async def execute(self, response: Response) -> None:
            seen.append(threading.get_ident())
            response.success(OK)

    await (await dispatcher.dispatch(RequestIdentifier.new(), OnLoop()))
    assert seen == [threading.get_ident()]


async def test_a_full_queue_rejects_at_once_runs_nothing_and_a_retry_later_runs() -> None:
    store = MemoryStore()
    async with Dispatcher(store=store, concurrent=1, queue_slow=1) as dispatcher:
        gate = Gate()
        running = BlockingJob(gate)
        waiting = BlockingJob(gate)
        first = await dispatcher.dispatch(RequestIdentifier.new(), running)
        await running.started.wait()
        second = await dispatcher.dispatch(RequestIdentifier.new(), waiting)
        rejected_id = RequestIdentifier.new()
        rejected = BlockingJob(gate)
        with pytest.raises(JobError) as caught:
            await dispatcher.dispatch(rejected_id, rejected)
        assert caught.value.response_failure() is F.RATE_LIMIT
        assert caught.value.message == (
            "The server is at maximum capacity - please try again shortly"
        )
        assert rejected.runs == 0
        assert await store.get(JobKey("anonymous", rejected_id)) is None
        gate.open()
        await first
        await second
        retry = ClientResponse()
        await (await dispatcher.dispatch(rejected_id, rejected, retry))
        assert rejected.runs == 1
        assert retry.data == "unblocked"


async def test_a_full_queue_still_replays_finished_jobs() -> None:
    async with Dispatcher(concurrent=1, queue_slow=1) as dispatcher:
        done_id = RequestIdentifier.new()
        await (await dispatcher.dispatch(done_id, DataJob("kept")))
        gate = Gate()
        blockers = [BlockingJob(gate), BlockingJob(gate)]
        handles = [await dispatcher.dispatch(RequestIdentifier.new(), blockers[0])]
        await blockers[0].started.wait()
        handles.append(await dispatcher.dispatch(RequestIdentifier.new(), blockers[1]))
        with pytest.raises(JobError):  # the queue is full now
            await dispatcher.dispatch(RequestIdentifier.new(), BlockingJob(gate))
        replay = ClientResponse()
        await (await dispatcher.dispatch(done_id, DataJob("kept"), replay))
        assert replay.data == "kept"
        gate.open()
        await asyncio.gather(*(h.wait() for h in handles))


async def test_a_worker_lives_on_after_a_job_raises() -> None:
    async with Dispatcher(concurrent=1) as dispatcher:

        class Boom:
            def execute(self, response: Response) -> None:
                raise KeyError("missing")

        failed = ClientResponse()
        await (await dispatcher.dispatch(RequestIdentifier.new(), Boom(), failed))
        assert failed.error is not None
        assert failed.error.response_failure() is F.ERROR
        after = ClientResponse()
        await (await dispatcher.dispatch(RequestIdentifier.new(), DataJob("alive"), after))
        assert after.data == "alive"


class AwaitsCancelled:
    """Awaits a future that something else cancelled: raises CancelledError itself."""

    fast = True

    async def execute(self, response: Response) -> None:
        cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        cancelled.cancel()
        await cancelled


def cancel_own_task() -> None:
    task = asyncio.current_task()
    assert task is not None
    task.cancel()


async def a_job_still_runs(dispatcher: Dispatcher) -> None:
    after = ClientResponse()
    handle = await dispatcher.dispatch(RequestIdentifier.new(), DataJob("alive"), after)
    await asyncio.wait_for(handle.wait(), 30)
    assert after.data == "alive"


async def test_a_job_that_raises_cancelled_error_fails_and_its_worker_lives_on() -> None:
    """A CancelledError the job raises itself (say, from a future someone else cancelled) is
    the job's failure, not the worker's cancellation: joiners get the answer, the worker the
    next job."""
    async with Dispatcher(concurrent=1) as dispatcher:
        failed = ClientResponse()
        ident = RequestIdentifier.new()
        handle = await dispatcher.dispatch(ident, AwaitsCancelled(), failed)
        await asyncio.wait_for(handle.wait(), 30)  # before: the run never ended, a worker died
        assert failed.error is not None
        assert failed.error.response_failure() is F.ERROR
        record = await dispatcher.get(JobKey("anonymous", ident))
        assert record is not None and record.state is JobState.FAILED
        after = ClientResponse()
        await (await dispatcher.dispatch(RequestIdentifier.new(), DataJob("alive"), after))
        assert after.data == "alive"


async def test_a_sync_job_streaming_from_its_thread_is_recorded_in_order(
    dispatcher: Dispatcher,
) -> None:
    class Threaded:
        def execute(self, response: Response) -> None:
            writer = response.success_with_write(OK, True, False)
            for i in range(500):
                writer.write(f"{i}\n")

    response = ClientResponse()
    await (await dispatcher.dispatch(RequestIdentifier.new(), Threaded(), response))
    assert response.data.getvalue() == "".join(f"{i}\n" for i in range(500)).encode()


def test_queue_sizes_must_be_positive() -> None:
    with pytest.raises(GearjobsError, match="capacity must be at least 1"):
        Dispatcher(queue_fast=0)
    with pytest.raises(GearjobsError, match="concurrent must be at least 1"):
        Dispatcher(concurrent=0)


class HeldStore(MemoryStore):
    """A memory store whose final writes wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[asyncio.Future[None]] = []
        self.holding = True
        self.asked = asyncio.Event()
        """Set when a final write is first held."""

    def finish_soon(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> asyncio.Future[None]:
        if not self.holding:
            return super().finish_soon(record, entries, start=start)
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held.append(written)
        self.asked.set()
        written.add_done_callback(lambda _: self._finish(record.copy(), list(entries), start))
        return written

    async def finish(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        await self.finish_soon(record, entries, start=start)

    def release(self) -> None:
        self.holding = False
        for written in self.held:
            if not written.done():
                written.set_result(None)


async def test_a_worker_takes_the_next_job_while_the_last_answer_is_being_written() -> None:
    store = HeldStore()
    async with Dispatcher(
        store=store, concurrent=1, queue_fast=2, queue_slow=2, hold_answers=False
    ) as dispatcher:
        asyncio.get_running_loop().call_later(30, store.release)  # a failure must not hang
        first = RequestIdentifier.new()
        await (await dispatcher.dispatch(first, DataJob("a")))
        record = await dispatcher.get(JobKey("anonymous", first))
        assert record is not None and record.state is JobState.SUCCEEDED  # known at once
        stored = await store.get(JobKey("anonymous", first))
        assert stored is not None and stored.state is not JobState.SUCCEEDED  # still held
        second = ClientResponse()
        handle = await dispatcher.dispatch(RequestIdentifier.new(), DataJob("b"), second)
        done, _ = await asyncio.wait([asyncio.ensure_future(handle.wait())], timeout=10)
        assert done and second.data == "b", "the only worker ran the next job"
        store.release()
        listed = await dispatcher.list_records(state=JobState.SUCCEEDED)
        assert first in [record.key.id for record in listed]
        stored = await store.get(JobKey("anonymous", first))
        assert stored is not None and stored.state is JobState.SUCCEEDED


async def test_when_the_store_falls_behind_the_workers_wait_for_it() -> None:
    store = HeldStore()
    async with Dispatcher(
        store=store, concurrent=1, queue_fast=1, queue_slow=1, hold_answers=False
    ) as dispatcher:
        asyncio.get_running_loop().call_later(30, store.release)  # a failure must not hang
        for _ in range(2):  # the limit of answers being written: both queues' capacity
            await (await dispatcher.dispatch(RequestIdentifier.new(), DataJob("x")))
        third = await dispatcher.dispatch(RequestIdentifier.new(), DataJob("x"))
        await third
        fourth = DataJob("x")
        waiting = await dispatcher.dispatch(RequestIdentifier.new(), fourth)
        assert len(store.held) == 3
        await asyncio.sleep(0)  # one turn of the loop would be enough to start it
        assert fourth.runs == 0, "the worker waits for the third answer's write"
        store.release()
        await waiting
        assert fourth.runs == 1


async def test_a_cancelled_listing_does_not_cancel_the_answers_being_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    try:
        async with Dispatcher(store=store) as dispatcher:
            ids = [RequestIdentifier.new() for _ in range(5)]
            for ident in ids:
                await (await dispatcher.dispatch(ident, DataJob("x")))
            listing = asyncio.ensure_future(dispatcher.list_records())
            await asyncio.sleep(0)  # the listing now waits for the answers being written
            listing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listing
            for ident in ids:
                await dispatcher.recorded(JobKey("anonymous", ident))
                stored = await store.get(JobKey("anonymous", ident))
                assert stored is not None and stored.state is JobState.SUCCEEDED
        assert "not recorded" not in caplog.text
    finally:
        await store.close()


async def test_a_job_that_cancels_its_own_task_fails_and_its_worker_lives_on() -> None:
    async with Dispatcher(concurrent=1) as dispatcher:

        class CancelsItself:
            fast = True

            async def execute(self, response: Response) -> None:
                cancel_own_task()
                await asyncio.sleep(0)

        ident = RequestIdentifier.new()
        failed = ClientResponse()
        await asyncio.wait_for(
            (await dispatcher.dispatch(ident, CancelsItself(), failed)).wait(), 30
        )
        assert failed.error is not None and failed.error.response_failure() is F.ERROR
        record = await dispatcher.get(JobKey("anonymous", ident))
        assert record is not None and record.state is JobState.FAILED
        await a_job_still_runs(dispatcher)  # before: the worker had died


async def test_a_cancellation_a_job_swallowed_does_not_reach_the_next_job() -> None:
    """A job that cancels its own task and catches it (as some timeout helpers do) leaves
    the worker's task asking for no cancellation: the next job on it is judged on its own."""
    async with Dispatcher(concurrent=1) as dispatcher:

        class SwallowsItsCancel:
            fast = True

            async def execute(self, response: Response) -> None:
                cancel_own_task()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(3600)
                response.success_with_data(OK, "fine")

        class CancelsWithoutWaiting:
            fast = True

            async def execute(self, response: Response) -> None:
                cancel_own_task()  # and returns: the cancellation is still pending
                response.success_with_data(OK, "left one behind")

        jobs = ((SwallowsItsCancel(), "fine"), (CancelsWithoutWaiting(), "left one behind"))
        for job, data in jobs:
            first = ClientResponse()
            handle = await dispatcher.dispatch(RequestIdentifier.new(), job, first)
            await asyncio.wait_for(handle.wait(), 30)
            assert first.data == data
            ident = RequestIdentifier.new()
            handle = await dispatcher.dispatch(ident, AwaitsCancelled(), ClientResponse())
            await asyncio.wait_for(handle.wait(), 30)
            record = await dispatcher.get(JobKey("anonymous", ident))
            assert record is not None and record.state is JobState.FAILED, "not lost"
            for _ in range(2):  # the second finds the worker idle, waiting for work
                await a_job_still_runs(dispatcher)


async def test_a_sync_job_raising_cancelled_error_fails_like_any_other() -> None:
    async with Dispatcher(concurrent=1) as dispatcher:

        class RaisesInItsThread:
            fast = True

            def execute(self, response: Response) -> None:
                raise asyncio.CancelledError()

        failed = ClientResponse()
        handle = await dispatcher.dispatch(RequestIdentifier.new(), RaisesInItsThread(), failed)
        await asyncio.wait_for(handle.wait(), 30)
        assert failed.error is not None and failed.error.response_failure() is F.ERROR


class RefusingStore(MemoryStore):
    """A memory store that refuses the first `refusals` final writes (a store outage)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.tries = 0

    def finish_soon(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> asyncio.Future[None]:
        self.tries += 1
        if self.tries > self.refusals:
            return super().finish_soon(record, entries, start=start)
        refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        refused.set_exception(OSError("database or disk is full"))
        return refused


async def test_an_answer_the_store_refused_is_written_again_and_repeats_get_it_meanwhile() -> None:
    store = RefusingStore(refusals=2)
    async with Dispatcher(store=store, hold_answers=False) as dispatcher:
        ident, job = RequestIdentifier.new(), DataJob("kept")
        first = ClientResponse()
        await (await dispatcher.dispatch(ident, job, first))
        assert (first.data, store.tries) == ("kept", 1)
        repeat = ClientResponse()  # the store has no answer yet: the live job answers
        async with asyncio.timeout(10):  # it used to follow the unfinished record forever
            await (await dispatcher.dispatch(ident, job, repeat))
        assert repeat.data == "kept" and job.runs == 1
        await dispatcher.recorded(JobKey("anonymous", ident))
        assert store.tries == 3
        stored = await store.get(JobKey("anonymous", ident))
        assert stored is not None and stored.state is JobState.SUCCEEDED
        after = ClientResponse()
        await (await dispatcher.dispatch(ident, job, after))
        assert after.data == "kept" and job.runs == 1


async def test_a_listing_shows_a_job_whose_answer_waits_for_a_retry_as_get_does() -> None:
    store = RefusingStore(refusals=1)
    async with Dispatcher(store=store, hold_answers=False) as dispatcher:
        ident, job = RequestIdentifier.new(), DataJob("kept")
        await (await dispatcher.dispatch(ident, job, ClientResponse()))
        key = JobKey("anonymous", ident)
        stored = await store.get(key)
        assert stored is not None and stored.state is JobState.RUNNING  # the write waits
        live = await dispatcher.get(key)
        assert live is not None and live.state is JobState.SUCCEEDED
        listed = await dispatcher.list_records()
        assert [(r.key, r.state) for r in listed] == [(key, JobState.SUCCEEDED)]
        assert await dispatcher.list_records(state=JobState.QUEUED) == []
        await dispatcher.recorded(key)
        listed = await dispatcher.list_records(state=JobState.SUCCEEDED)
        assert [(r.key, r.state) for r in listed] == [(key, JobState.SUCCEEDED)]


async def test_an_answer_the_store_keeps_refusing_is_given_up_and_close_does_not_wait() -> None:
    store = RefusingStore(refusals=1_000)
    dispatcher = Dispatcher(store=store, hold_answers=False)
    dispatcher.WRITE_TRIES = 3
    async with dispatcher:
        ident = RequestIdentifier.new()
        await (await dispatcher.dispatch(ident, DataJob("x")))
        await dispatcher.recorded(JobKey("anonymous", ident))
        assert store.tries == 3
    stopping = RefusingStore(refusals=1_000)
    async with Dispatcher(store=stopping, hold_answers=False) as dispatcher:
        await (await dispatcher.dispatch(RequestIdentifier.new(), DataJob("y")))
        closing = asyncio.ensure_future(dispatcher.close(timeout=30))
        done, _ = await asyncio.wait([closing], timeout=5)
        assert done, "close tries the refused write once more and does not wait for retries"
        assert stopping.tries == 2


@contextlib.asynccontextmanager
async def given_up_once(store: Store) -> AsyncIterator[Dispatcher]:
    """A dispatcher that gives up a refused final write at once."""
    dispatcher = Dispatcher(store=store)
    dispatcher.WRITE_TRIES = 1
    async with dispatcher:
        yield dispatcher


async def run_unrecorded(dispatcher: Dispatcher, ident: RequestIdentifier, job: DataJob) -> JobKey:
    """Run `job` under `ident`, and wait until its write is made or given up."""
    await (await dispatcher.dispatch(ident, job))
    key = JobKey("anonymous", ident)
    await dispatcher.recorded(key)
    return key


async def test_a_job_whose_answer_was_never_recorded_is_lost_and_a_retry_runs_it() -> None:
    # The store refused the final write to the end: its record stays unfinished, and no one
    # runs the job. A repeat must not follow that record forever: the job is lost (503,
    # retry), and the retry runs it again.
    store = RefusingStore(refusals=1)
    async with given_up_once(store) as dispatcher:
        ident, job = RequestIdentifier.new(), DataJob("late")
        key = await run_unrecorded(dispatcher, ident, job)
        async with asyncio.timeout(10):
            with pytest.raises(JobError) as refused:
                await dispatcher.dispatch(ident, job)
        assert refused.value.response_failure() is F.UNAVAILABLE
        stored = await store.get(key)
        assert stored is not None and stored.state is JobState.LOST
        again = ClientResponse()
        await (await dispatcher.dispatch(ident, job, again))
        assert again.data == "late" and job.runs == 2


async def test_following_a_job_whose_answer_was_never_recorded_ends_with_the_lost_answer() -> None:
    store = RefusingStore(refusals=1)
    async with given_up_once(store) as dispatcher:
        key = await run_unrecorded(dispatcher, RequestIdentifier.new(), DataJob("late"))
        async with asyncio.timeout(10):  # it used to poll the unfinished record forever
            handle = await dispatcher.follow(key)
            assert handle is not None
            last = await handle
        assert isinstance(last, Failed) and last.failure is F.UNAVAILABLE
        stored = await store.get(key)
        assert stored is not None and stored.state is JobState.LOST


class Writes:
    """A job that runs `body` (counting its runs)."""

    fast = True

    def __init__(self, body: Callable[[Response], None]) -> None:
        self.body = body
        self.runs = 0

    async def execute(self, response: Response) -> None:
        self.runs += 1
        self.body(response)


def not_json_pending(response: Response) -> None:
    response.write_pending_success("Odd", {1: float("nan")})  # json.dumps takes it, JSON no
    response.success_with_data(ResponseSuccess.OK, "x")


def not_json_failure(response: Response) -> None:
    raise StructuredJobError(F.NOT_FOUND, "gone", {"when": {1, 2}})


@pytest.mark.parametrize("body", [not_json_pending, not_json_failure])
async def test_an_answer_a_json_store_could_not_record_fails_at_once_for_everyone(
    tmp_path: Path, body: Callable[[Response], None]
) -> None:
    # On SQLite (and Redis) what cannot be recorded must not go out: the job fails with
    # ERROR as it writes it, the failure is recorded, and a repeat gets the same answer.
    store = SQLiteStore(tmp_path / "jobs.db")
    try:
        async with Dispatcher(store=store) as dispatcher:
            ident, job = RequestIdentifier.new(), Writes(body)
            first, again = ClientResponse(), ClientResponse()
            await (await dispatcher.dispatch(ident, job, first))
            await dispatcher.recorded(JobKey("anonymous", ident))
            async with asyncio.timeout(10):
                await (await dispatcher.dispatch(ident, job, again))
            assert first.error is not None and again.error is not None
            assert first.error.response_failure() is F.ERROR
            assert "not JSON" in first.error.message
            assert again.error.message == first.error.message
            assert job.runs == 1
            stored = await store.get(JobKey("anonymous", ident))
            assert stored is not None and stored.state is JobState.FAILED
    finally:
        await store.close()


async def test_a_store_for_one_dispatcher_refuses_a_second_while_the_first_is_open(
    tmp_path: Path,
) -> None:
    for store in (MemoryStore(), SQLiteStore(tmp_path / "jobs.db")):
        async with Dispatcher(store=store):
            with pytest.raises(GearjobsError, match="in use by another dispatcher"):
                await Dispatcher(store=store).start()
        async with Dispatcher(store=store):  # free again once the first has closed
            pass
        await store.close()


class RefusesOneFinish(MemoryStore):
    """A memory store whose awaited final write (`finish`) refuses once."""

    refused = False

    async def finish(
        self, record: JobRecord, entries: Sequence[Entry], *, start: int | None = None
    ) -> None:
        if not self.refused:
            self.refused = True
            raise OSError("database or disk is full")
        await super().finish(record, entries, start=start)


async def test_an_answer_written_while_the_store_is_behind_is_written_again_if_refused() -> None:
    store = RefusesOneFinish()
    async with Dispatcher(store=store) as dispatcher:
        dispatcher._recording_limit = 0  # the store is behind: each worker awaits its write
        ident, job = RequestIdentifier.new(), DataJob("kept")
        await (await dispatcher.dispatch(ident, job))
        await dispatcher.recorded(JobKey("anonymous", ident))
        stored = await store.get(JobKey("anonymous", ident))
        assert store.refused and stored is not None and stored.state is JobState.SUCCEEDED
        again = ClientResponse()
        await (await dispatcher.dispatch(ident, job, again))
        assert again.data == "kept" and job.runs == 1


async def test_a_listing_by_state_matches_live_states_and_keeps_its_pages_full(
    store: Store,
) -> None:
    # A running job's row may still say queued (SQLite writes no `running`; nor does Redis
    # for a fast job): it was in neither `state=running` nor `state=queued`. And a page that
    # dropped rows whose live state differs came out short, which ends paging.
    gate = Gate()
    async with Dispatcher(store=store, concurrent=3) as dispatcher:
        jobs = [DataJob(n, gate, fast=True) for n in range(4)]
        keys, handles = [], []
        for n, job in enumerate(jobs):
            ident = RequestIdentifier.new()
            keys.append(JobKey("anonymous", ident))
            handles.append(await dispatcher.dispatch(ident, job, fingerprint=str(n)))
            if n < 3:
                await job.started.wait()  # three run; the fourth waits in the queue
        running = await dispatcher.list_records(state=JobState.RUNNING, limit=2)
        rest = await dispatcher.list_records(
            state=JobState.RUNNING,
            limit=2,
            before=(running[-1].created_at, str(running[-1].key.id)),
        )
        queued = await dispatcher.list_records(state=JobState.QUEUED)
        assert await dispatcher.list_records(state=JobState.RUNNING, limit=0) == []
        gate.open()
        for handle in handles:
            await handle
    listed = running + rest
    assert len(running) == 2 and len(listed) == 3 and {r.key for r in listed} == set(keys[:3])
    order = [(r.created_at, str(r.key.id)) for r in listed]
    assert order == sorted(order, reverse=True)
    assert all(r.state is JobState.RUNNING for r in listed)
    assert [r.key for r in queued] == [keys[3]]


@pytest.mark.parametrize("retention", [0.0, -1.0, float("nan"), float("inf")])
def test_retention_must_be_a_positive_finite_number(retention: float) -> None:
    with pytest.raises(GearjobsError, match="retention must be a positive number"):
        Dispatcher(retention=retention)
