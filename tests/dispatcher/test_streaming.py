import asyncio
import gc
import sys
from collections.abc import AsyncIterator

from gearjobs.dispatcher import Dispatcher
from gearjobs.jobs import RequestIdentifier, ResponseFailure, ResponseSuccess, SimpleError
from gearjobs.store import ENDED, Body, Chunk, Entry, Event, Failed, Succeeded

from .helpers import Gate, StreamJob


async def collect(entries: AsyncIterator[Entry]) -> list[Entry]:
    return [entry async for entry in entries]


async def test_a_joiner_mid_stream_gets_the_whole_stream_from_its_first_chunk_in_order(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    job = StreamJob(3, 30, gate)
    ident = RequestIdentifier.new()
    first = await dispatcher.dispatch(ident, job)
    first_reader = asyncio.create_task(collect(first.follow()))
    await job.wrote_first.wait()
    joiner = await dispatcher.dispatch(ident, StreamJob(3, 30))
    assert joiner.joined
    joined_reader = asyncio.create_task(collect(joiner.follow()))
    gate.open()
    got_first, got_joined = await asyncio.gather(first_reader, joined_reader)
    expected_chunks = [Chunk(f"line {i}\n".encode()) for i in range(33)]
    assert got_joined == got_first
    assert isinstance(got_joined[0], Succeeded)
    assert got_joined[1:-1] == expected_chunks
    assert got_joined[-1] == ENDED
    assert job.runs == 1


async def test_a_reader_that_stops_reading_does_not_hold_up_the_job_or_others(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    job = StreamJob(1, 2000, gate, structured=True)
    ident = RequestIdentifier.new()
    handle = await dispatcher.dispatch(ident, job)
    stalled = handle.follow()
    first_entry = await anext(stalled)  # reads one entry, then never again
    assert isinstance(first_entry, Succeeded)
    readers = [asyncio.create_task(collect(handle.follow())) for _ in range(10)]
    gate.open()
    terminal = await handle
    assert terminal == ENDED
    results = await asyncio.gather(*readers)
    assert all(len(r) == 2003 for r in results)
    await stalled.aclose()


async def test_the_journal_keeps_one_copy_of_the_output_for_any_number_of_readers(
    dispatcher: Dispatcher,
) -> None:
    gate = Gate()
    job = StreamJob(0, 50, gate)
    ident = RequestIdentifier.new()
    handle = await dispatcher.dispatch(ident, job)
    readers = [asyncio.create_task(collect(handle.follow())) for _ in range(200)]
    gate.open()
    results = await asyncio.gather(*readers)
    reference = results[0]
    for result in results[1:]:
        # Every reader got the very same chunk objects: nothing was copied per reader.
        assert all(a is b for a, b in zip(result, reference, strict=True))
    chunk = reference[1]
    assert isinstance(chunk, Chunk)
    gc.collect()
    referrers = [r for r in gc.get_referrers(chunk.data) if r is not chunk]
    assert referrers == [], "the chunk's bytes are held only by its entry"
    assert sys.getrefcount(chunk) > 1


async def test_a_job_that_raises_mid_stream_ends_the_stream_with_an_error_marker(
    dispatcher: Dispatcher,
) -> None:
    job = StreamJob(2, 0, structured=True, fail_at_end=RuntimeError("disk full"))
    handle = await dispatcher.dispatch(RequestIdentifier.new(), job)
    entries = await collect(handle.follow())
    assert entries[1:] == [
        Event({"n": 0}),
        Event({"n": 1}),
        Failed(ResponseFailure.ERROR, "disk full", None),
    ]


async def test_a_job_error_raised_mid_stream_keeps_its_code(dispatcher: Dispatcher) -> None:
    error = SimpleError(ResponseFailure.NOT_FOUND, "source vanished")
    job = StreamJob(1, 0, fail_at_end=error)
    terminal = await (await dispatcher.dispatch(RequestIdentifier.new(), job))
    assert terminal == Failed(ResponseFailure.NOT_FOUND, "source vanished", None)


async def test_first_waits_for_the_first_entry_and_leaves_the_rest_to_readers() -> None:
    from gearjobs.dispatcher._journal import Journal

    journal = Journal()
    waiting = asyncio.ensure_future(journal.first())
    await asyncio.sleep(0)  # one loop turn: it is waiting, not answered with nothing
    assert not waiting.done()
    opening = Succeeded(ResponseSuccess.OK, Body.TEXT, {})
    journal.append(opening)
    journal.append(Chunk(b"a"))
    assert await waiting is opening
    journal.append(ENDED)
    assert await journal.first() is opening  # at once when written
    assert await collect(journal.follow(1)) == [Chunk(b"a"), ENDED]
