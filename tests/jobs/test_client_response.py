import io
import json

import pytest

from gearjobs.jobs import (
    ClientResponse,
    NoJobForRequest,
    Response,
    ResponseFailure,
    ResponseSuccess,
    SimpleError,
    StructuredJobError,
    UnknownJobError,
)

OK = ResponseSuccess.OK


def test_client_response_is_a_response() -> None:
    assert isinstance(ClientResponse(), Response)


def test_second_success_is_reported_not_applied() -> None:
    response = ClientResponse()
    response.success_with_data(OK, {"first": 1})
    response.success_with_data(ResponseSuccess.ACCEPTED, {"second": 2})
    assert response.data == {"first": 1}
    assert response.kind is OK
    assert [str(m) for m in response.misuses] == ["jobs: Cannot call Success() twice"]
    assert response.error is None


def test_failure_after_success_is_reported_not_applied() -> None:
    response = ClientResponse()
    response.success(OK)
    response.failure(SimpleError(ResponseFailure.NOT_FOUND, "gone"))
    assert response.error is None
    assert response.succeeded and not response.failed
    assert [str(m) for m in response.misuses] == ["jobs: may not invoke failure after Success()"]


def test_success_after_failure_is_reported_not_applied() -> None:
    response = ClientResponse()
    error = SimpleError(ResponseFailure.NOT_FOUND, "gone")
    response.failure(error)
    response.success_with_data(OK, "late")
    assert response.error is error
    assert response.data is None
    assert [str(m) for m in response.misuses] == ["jobs: Cannot call Success() after failure"]


def test_second_failure_is_reported_not_applied() -> None:
    response = ClientResponse()
    first = SimpleError(ResponseFailure.NOT_FOUND, "first")
    response.failure(first)
    response.failure(SimpleError(ResponseFailure.ERROR, "second"))
    assert response.error is first
    assert [str(m) for m in response.misuses] == ["jobs: may not write failure twice"]


def test_pending_values_are_kept_on_success() -> None:
    response = ClientResponse()
    response.write_pending_success("Count", 3)
    response.success(OK)
    assert response.pending == {"Count": 3}


def test_pending_values_are_dropped_on_failure() -> None:
    response = ClientResponse()
    response.write_pending_success("Count", 3)
    response.failure(SimpleError(ResponseFailure.ERROR, "no"))
    response.write_pending_success("Later", 4)
    assert response.pending == {}


def test_write_pending_writes_name_value_lines_in_name_order() -> None:
    response = ClientResponse()
    for name, value in [("Zeta", 1), ("Alpha", "two"), ("Mid", 3.5)]:
        response.write_pending_success(name, value)
    out = io.StringIO()
    response.write_pending(out)
    assert out.getvalue() == "Alpha: two\nMid: 3.5\nZeta: 1\n"


def test_gathering_a_text_stream_collects_its_bytes() -> None:
    response = ClientResponse()
    writer = response.success_with_write(OK, True, False)
    writer.write("tick 1\n")
    writer.write(b"tick 2\n")
    assert response.data.getvalue() == b"tick 1\ntick 2\n"


def test_gathering_a_structured_stream_is_refused_as_in_the_reference() -> None:
    response = ClientResponse()
    writer = response.success_with_write(OK, True, True)
    writer.write({"n": 1})
    assert response.error is not None
    assert str(response.error) == (
        "jobs: Client does not support receiving streaming structured data"
    )
    assert response.data is None


def test_printing_response_writes_pending_data_and_streams_to_output() -> None:
    out = io.StringIO()
    response = ClientResponse(output=out, gather=False)
    response.write_pending_success("B", 2)
    response.write_pending_success("A", 1)
    response.success_with_data(OK, {"x": [1, 2]})
    assert out.getvalue() == 'A: 1\nB: 2\n{"x": [1, 2]}\n'

    out = io.StringIO()
    response = ClientResponse(output=out, gather=False)
    writer = response.success_with_write(OK, True, True)
    writer.write({"n": 1})
    writer.write({"n": 2})
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [{"n": 1}, {"n": 2}]


def test_failure_with_a_plain_exception_becomes_unknown_job_error() -> None:
    response = ClientResponse()
    response.failure(ValueError("broken thing"))
    assert isinstance(response.error, UnknownJobError)
    assert response.error.response_failure() is ResponseFailure.ERROR
    assert response.error.response_data() is None
    assert response.error.message == "broken thing"


def test_structured_error_carries_code_message_and_data() -> None:
    error = StructuredJobError(ResponseFailure.INVALID_REQUEST, "bad seconds", {"param": "x"})
    assert error.response_failure() is ResponseFailure.INVALID_REQUEST
    assert error.response_data() == {"param": "x"}
    assert error.message == "bad seconds"
    assert SimpleError(ResponseFailure.NOT_FOUND, "x").response_data() is None


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (ResponseFailure.ERROR, "error"),
        (ResponseFailure.ALREADY_EXISTS, "already-exists"),
        (ResponseFailure.NOT_FOUND, "not-found"),
        (ResponseFailure.INVALID_REQUEST, "invalid-request"),
        (ResponseFailure.RATE_LIMIT, "rate-limit"),
        (ResponseFailure.NOT_ACCEPTABLE, "not-acceptable"),
        (ResponseFailure.REQUEST_MISMATCH, "request-mismatch"),
        (ResponseFailure.UNAVAILABLE, "unavailable"),
    ],
)
def test_failure_codes_are_the_wire_codes(failure: ResponseFailure, code: str) -> None:
    assert failure.value == code
    assert ResponseFailure(code) is failure


def test_no_job_for_request_has_the_reference_message() -> None:
    assert str(NoJobForRequest()) == "no job matches that request"
