import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gearjobs.dispatcher import Dispatcher, JobHandle
from gearjobs.jobs import (
    ERR_RAN_TO_COMPLETION,
    ClientResponse,
    Job,
    JobContext,
    JobError,
    JoinAction,
    RequestIdentifier,
    Response,
    ResponseFailure,
    SimpleError,
    StructuredJobError,
    current_context,
)
from gearjobs.store import (
    Body,
    Failed,
    JobKey,
    JobState,
    MemoryStore,
    SQLiteStore,
    Store,
    Succeeded,
)

from .helpers import OK, DataJob, Gate, StreamJob


def outcome(response: ClientResponse) -> tuple[Any, ...]:
    """Everything a client received, in a hashable form."""
    error = response.error
    data = response.data
    if isinstance(data, io.BytesIO):
        data = data.getvalue().decode()
    return (
        response.kind,
        json.dumps(response.pending, sort_keys=True),
        json.dumps(data, sort_keys=True),
        None
        if error is None
        else (error.response_failure(), error.message, json.dumps(error.response_data())),
    )


async def dispatch_many(
    dispatcher: Dispatcher, ident: RequestIdentifier, job: Job, n: int, **kw: Any
) -> list[tuple[JobHandle, ClientResponse]]:
    responses = [ClientResponse() for _ in range(n)]
    handles = await asyncio.gather(*(dispatcher.dispatch(ident, job, r, **kw) for r in responses))
    return list(zip(handles, responses, strict=True))


async def test_a_thousand_dispatches_of_one_id_run_the_job_once_with_identical_data(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    job = DataJob({"answer": [1, 2, 3]}, gate)
    ident = RequestIdentifier.new()
    pairs = await dispatch_many(dispatcher, ident, job, 1000)
    gate.open()
    await asyncio.gather(*(h.wait() for h, _ in pairs))
    assert job.runs == 1
    assert sum(1 for h, _ in pairs if not h.joined) == 1
    outcomes = {outcome(r) for _, r in pairs}
    assert outcomes == {(OK, '{"Total": 3}', json.dumps({"answer": [1, 2, 3]}), None)}


async def test_a_thousand_dispatches_of_a_text_stream_get_identical_bytes(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    job = StreamJob(5, 50, gate)
    ident = RequestIdentifier.new()
    first = await dispatch_many(dispatcher, ident, job, 500)
    await job.wrote_first.wait()
    second = await dispatch_many(dispatcher, ident, job, 500)
    gate.open()
    pairs = first + second
    await asyncio.gather(*(h.wait() for h, _ in pairs))
    expected = b"".join(f"line {i}\n".encode() for i in range(55))
    assert job.runs == 1
    assert {outcome(r) for _, r in pairs} == {
        (OK, '{"Count-Total": 55}', json.dumps(expected.decode()), None)
    }


async def test_a_thousand_dispatches_of_an_event_stream_get_identical_events(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    job = StreamJob(3, 20, gate, structured=True)
    ident = RequestIdentifier.new()
    outputs = [io.StringIO() for _ in range(1000)]
    handles = await asyncio.gather(
        *(dispatcher.dispatch(ident, job, ClientResponse(output=o, gather=False)) for o in outputs)
    )
    gate.open()
    await asyncio.gather(*(h.wait() for h in handles))
    expected = "Count-Total: 23\n" + "".join(json.dumps({"n": i}) + "\n" for i in range(23))
    assert job.runs == 1
    assert {o.getvalue() for o in outputs} == {expected}


async def test_a_thousand_dispatches_of_a_failing_job_get_identical_failures(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    runs = 0

    class Failing:
        async def execute(self, response: Response) -> None:
            nonlocal runs
            runs += 1
            response.write_pending_success("Dropped", 1)
            await gate.wait()
            response.failure(StructuredJobError(ResponseFailure.NOT_FOUND, "no such", {"k": 1}))

    ident = RequestIdentifier.new()
    pairs = await dispatch_many(dispatcher, ident, Failing(), 1000)
    gate.open()
    await asyncio.gather(*(h.wait() for h, _ in pairs))
    assert runs == 1
    assert {outcome(r) for _, r in pairs} == {
        (None, "{}", "null", (ResponseFailure.NOT_FOUND, "no such", '{"k": 1}'))
    }


async def test_a_finished_job_is_replayed_without_running_again(dispatcher: Dispatcher) -> None:
    job = DataJob({"v": 1})
    ident = RequestIdentifier.new()
    first = ClientResponse()
    await (await dispatcher.dispatch(ident, job, first))
    again = ClientResponse()
    handle = await dispatcher.dispatch(ident, DataJob({"v": 1}), again)
    await handle
    assert job.runs == 1
    assert handle.joined
    assert outcome(again) == outcome(first)
    record = await dispatcher.get(JobKey("anonymous", ident))
    assert record is not None and record.state is JobState.SUCCEEDED


async def test_after_retention_a_remembered_id_answers_ran_to_completion() -> None:
    now = [1000.0]
    store = MemoryStore()
    async with Dispatcher(store=store, retention=60, clock=lambda: now[0]) as dispatcher:
        ident = RequestIdentifier.new()
        job = DataJob("once")
        await (await dispatcher.dispatch(ident, job))
        now[0] += 59
        await dispatcher.prune()
        replay = ClientResponse()
        await (await dispatcher.dispatch(ident, DataJob("once"), replay))
        assert replay.data == "once"
        now[0] += 2
        await dispatcher.prune()
        with pytest.raises(SimpleError) as caught:
            await dispatcher.dispatch(ident, DataJob("once"))
        assert caught.value is ERR_RAN_TO_COMPLETION
        assert job.runs == 1


async def test_ids_beyond_track_duplicate_ids_are_forgotten_and_may_run_again() -> None:
    now = [0.0]
    async with Dispatcher(retention=10, track_duplicate_ids=2, clock=lambda: now[0]) as d:
        ids = [RequestIdentifier.new() for _ in range(3)]
        for ident in ids:
            now[0] += 1
            await (await d.dispatch(ident, DataJob("x")))
        now[0] += 100
        await d.prune()
        for ident in ids[1:]:
            with pytest.raises(SimpleError) as caught:
                await d.dispatch(ident, DataJob("x"))
            assert caught.value is ERR_RAN_TO_COMPLETION
        oldest = DataJob("x")
        await (await d.dispatch(ids[0], oldest))
        assert oldest.runs == 1


async def test_the_same_id_with_a_different_request_fails_with_request_mismatch(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    ident = RequestIdentifier.new()
    job = DataJob(1, gate)
    handle = await dispatcher.dispatch(ident, job, fingerprint="echo:{a:1}")
    with pytest.raises(JobError) as running:
        await dispatcher.dispatch(ident, DataJob(1), fingerprint="echo:{a:2}")
    gate.open()
    await handle
    with pytest.raises(JobError) as finished:
        await dispatcher.dispatch(ident, DataJob(1), fingerprint="echo:{a:2}")
    for caught in (running, finished):
        assert caught.value.response_failure() is ResponseFailure.REQUEST_MISMATCH
    assert job.runs == 1


async def test_ids_are_scoped_by_user(dispatcher: Dispatcher) -> None:
    ident = RequestIdentifier.new()
    seen: list[JobContext] = []

    class WhoAmI:
        async def execute(self, response: Response) -> None:
            seen.append(current_context())
            response.success_with_data(OK, current_context().user)

    alice, bob = ClientResponse(), ClientResponse()
    await (await dispatcher.dispatch(ident, WhoAmI(), alice, context=JobContext(ident, "alice")))
    await (await dispatcher.dispatch(ident, WhoAmI(), bob, context=JobContext(ident, "bob")))
    assert (alice.data, bob.data) == ("alice", "bob")
    assert [c.user for c in seen] == ["alice", "bob"]
    assert all(c.id == ident for c in seen)


class Refusing:
    """A job that refuses to be joined while running and asks to re-run once finished."""

    def __init__(self, gate: Gate | None = None) -> None:
        self.gate = gate
        self.runs = 0
        self.consulted: list[tuple[Job | None, bool]] = []

    async def execute(self, response: Response) -> None:
        self.runs += 1
        if self.gate is not None:
            await self.gate.wait()
        response.success_with_data(OK, self.runs)

    def join(self, other: Job | None, done: bool) -> JoinAction:
        self.consulted.append((other, done))
        if not done:
            raise SimpleError(ResponseFailure.ALREADY_EXISTS, "busy, do not join")
        return JoinAction.RERUN


async def test_a_join_aware_job_can_refuse_a_join(dispatcher: Dispatcher) -> None:
    gate = Gate()
    first = Refusing(gate)
    ident = RequestIdentifier.new()
    handle = await dispatcher.dispatch(ident, first)
    second = Refusing()
    with pytest.raises(SimpleError, match="busy, do not join"):
        await dispatcher.dispatch(ident, second)
    assert second.consulted == [(first, False)]
    gate.open()
    await handle


async def test_a_join_aware_job_can_ask_a_finished_job_to_run_again(dispatcher: Dispatcher) -> None:
    ident = RequestIdentifier.new()
    first = Refusing()
    await (await dispatcher.dispatch(ident, first))
    second = Refusing()
    response = ClientResponse()
    handle = await dispatcher.dispatch(ident, second, response)
    await handle
    assert not handle.joined
    assert (first.runs, second.runs) == (1, 1)
    assert response.data == 1
    record = await dispatcher.get(JobKey("anonymous", ident))
    assert record is not None and record.run == 2
    assert second.consulted and second.consulted[0][1] is True


async def test_a_job_that_returns_without_writing_is_a_plain_success(
    dispatcher: Dispatcher,
) -> None:
    class Quiet:
        async def execute(self, response: Response) -> None:
            return None

    handle = await dispatcher.dispatch(RequestIdentifier.new(), Quiet())
    terminal = await handle
    assert isinstance(terminal, Succeeded)
    assert (terminal.kind, terminal.body) == (OK, Body.NONE)


async def test_a_repeated_dispatch_of_a_failed_job_replays_the_failure(
    dispatcher: Dispatcher,
) -> None:
    class Boom:
        runs = 0

        async def execute(self, response: Response) -> None:
            Boom.runs += 1
            raise ValueError("kaput")

    ident = RequestIdentifier.new()
    await (await dispatcher.dispatch(ident, Boom()))
    terminal = await (await dispatcher.dispatch(ident, Boom()))
    assert terminal == Failed(ResponseFailure.ERROR, "kaput", None)
    assert Boom.runs == 1


def watch_prunes(store: Store) -> asyncio.Event:
    """An event set once a prune of `store` (the real one, called through) changed a record."""
    pruned = asyncio.Event()
    prune = store.prune

    async def watched(*, now: float, retention: float, remember: int) -> int:
        changed = await prune(now=now, retention=retention, remember=remember)
        if changed:
            pruned.set()
        return changed

    setattr(store, "prune", watched)  # noqa: B010 - an instance's method, not a class's
    return pruned


async def test_the_dispatcher_prunes_by_itself_every_prune_interval() -> None:
    now = [0.0]
    store = MemoryStore()
    pruned = watch_prunes(store)
    async with Dispatcher(store=store, retention=5, prune_interval=0.01, clock=lambda: now[0]) as d:
        ident = RequestIdentifier.new()
        await (await d.dispatch(ident, DataJob("old")))
        await d.recorded(JobKey("anonymous", ident))
        now[0] = 100.0
        await asyncio.wait_for(pruned.wait(), 10)
        record = await store.get(JobKey("anonymous", ident))
        assert record is not None and not record.kept


async def test_a_dispatcher_started_on_an_old_store_prunes_it_at_once(tmp_path: Path) -> None:
    """A node restarted on a store past retention applies retention at start, not an
    interval (here an hour) later."""
    ident = RequestIdentifier.new()
    first = SQLiteStore(tmp_path / "jobs.db")
    try:
        async with Dispatcher(store=first, clock=lambda: 0.0) as d:
            await (await d.dispatch(ident, DataJob("old")))
    finally:
        await first.close()
    store = SQLiteStore(tmp_path / "jobs.db")
    pruned = watch_prunes(store)
    try:
        async with Dispatcher(
            store=store, retention=5, prune_interval=3600, clock=lambda: 100.0
        ) as d:
            await asyncio.wait_for(pruned.wait(), 10)
            record = await store.get(JobKey("anonymous", ident))
            assert record is not None and not record.kept
    finally:
        await store.close()


async def test_a_neighbour_whose_answer_cannot_be_written_does_not_make_a_job_run_again(
    tmp_path: Path,
) -> None:
    """On SQLite, answers finished together are written in one statement. One that cannot be
    written (a user that is no UTF-8) must not take its neighbour's answer down with it:
    the neighbour's id, asked again, replays instead of running again."""
    store = SQLiteStore(tmp_path / "jobs.db")
    try:
        async with Dispatcher(store=store) as dispatcher:
            job = DataJob("done", fast=True)
            ident, other = RequestIdentifier.new(), RequestIdentifier.new()
            handles = await asyncio.gather(
                dispatcher.dispatch(ident, job, context=JobContext(ident, "alice")),
                dispatcher.dispatch(other, job, context=JobContext(other, "\ud800")),
            )
            await asyncio.gather(*(handle.wait() for handle in handles))
            await dispatcher.list_records()  # waits for the answers being written
            assert job.runs == 2
            again = ClientResponse()
            handle = await dispatcher.dispatch(
                ident, job, again, context=JobContext(ident, "alice")
            )
            await handle
            assert again.data == "done"
            assert job.runs == 2, "alice's job ran a second time under the same id"
    finally:
        await store.close()
