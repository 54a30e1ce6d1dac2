"""What the memory store adds to the contract: finished jobs cost the garbage collector nothing."""

import datetime
import gc

from gearjobs.jobs import RequestIdentifier, ResponseSuccess
from gearjobs.store import Body, JobKey, JobRecord, JobState, MemoryStore, Succeeded


def finished(store: MemoryStore, data: object) -> JobKey:
    key = JobKey("u", RequestIdentifier.new())
    record = JobRecord(key, "echo", "fp", node="n", created_at=1.0)
    assert store.claim_now(record).claimed
    record.state = JobState.SUCCEEDED
    record.finished_at = 2.0
    store.finish_soon(record, [Succeeded(ResponseSuccess.OK, Body.DATA, {"X": "1"}, data)])
    return key


async def test_finished_jobs_add_no_objects_for_the_cyclic_collector_to_walk() -> None:
    store = MemoryStore()
    finished(store, {"warm": [1]})  # the store's own dictionaries exist from here
    gc.collect()
    before = len(gc.get_objects())
    for i in range(2000):
        finished(store, {"echo": {"n": i, "list": [i, "x"]}})
    gc.collect()  # tuples of plain values are untracked by the first collection they meet
    grown = len(gc.get_objects()) - before
    assert grown < 2000 * 0.1, f"{grown} tracked objects for 2000 finished jobs"


async def test_an_answer_that_is_not_json_is_kept_as_the_object_the_job_wrote() -> None:
    store = MemoryStore()
    when = datetime.date(2026, 11, 28)
    key = finished(store, {"when": when})
    [entry] = await store.read(key)
    assert isinstance(entry, Succeeded) and entry.data == {"when": when}


async def test_each_read_is_a_copy_a_reader_cannot_change_what_others_replay() -> None:
    store = MemoryStore()
    key = finished(store, {"items": [1, 2]})
    [first] = await store.read(key)
    assert isinstance(first, Succeeded)
    first.data["items"].append(3)
    [again] = await store.read(key)
    assert isinstance(again, Succeeded) and again.data == {"items": [1, 2]}
    record = await store.get(key)
    assert record is not None
    record.name = "changed"
    stored = await store.get(key)
    assert stored is not None and stored.name == "echo"
