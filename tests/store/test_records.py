import dataclasses

import pytest

from gearjobs.jobs import RequestIdentifier, ResponseFailure, ResponseSuccess
from gearjobs.store import Body, Event, JobKey, JobRecord, JobState


def test_record_copy_keeps_every_field_and_is_independent() -> None:
    record = JobRecord(
        JobKey("u", RequestIdentifier.new()),
        "name",
        "fp",
        JobState.FAILED,
        3,
        "node",
        1.0,
        2.0,
        3.0,
        ResponseSuccess.ACCEPTED,
        Body.EVENTS,
        ResponseFailure.NOT_FOUND,
        False,
    )
    copy = record.copy()
    for field in dataclasses.fields(JobRecord):
        assert getattr(copy, field.name) == getattr(record, field.name), field.name
    copy.state = JobState.LOST
    assert record.state is JobState.FAILED


def test_job_keys_are_equal_by_user_and_id_and_immutable() -> None:
    ident = RequestIdentifier.new()
    assert JobKey("a", ident) == JobKey("a", RequestIdentifier.parse(str(ident)))
    assert JobKey("a", ident) != JobKey("b", ident)
    assert len({JobKey("a", ident), JobKey("a", ident)}) == 1
    with pytest.raises(AttributeError):
        JobKey("a", ident).user = "b"


def test_an_event_is_encoded_once_as_a_json_line() -> None:
    event = Event({"n": 1, "s": "é"})
    line = event.line()
    assert line == '{"n":1,"s":"é"}\n'.encode()  # compact UTF-8, as answers are
    assert event.line() is line
