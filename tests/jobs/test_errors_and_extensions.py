import threading
from typing import Any

import pytest

import gearjobs
from gearjobs import jobs
from gearjobs.jobs import (
    ERR_RAN_TO_COMPLETION,
    ClientResponse,
    ExtensionRegistry,
    GearjobsError,
    InvalidRequestIdentifier,
    Job,
    JobContext,
    JobError,
    JobExtension,
    JobExtensionFunc,
    JobFunction,
    JobInitializer,
    NoJobForRequest,
    RequestIdentifier,
    Response,
    ResponseFailure,
    ResponseStateError,
    ResponseSuccess,
    SimpleError,
    StructuredJobError,
    UnknownJobError,
    add_job_extension,
    default_registry,
    fingerprint_of,
    is_async_job,
    is_fast,
    job_for,
)


def test_every_library_error_shares_one_root() -> None:
    for cls in (
        JobError,
        SimpleError,
        StructuredJobError,
        UnknownJobError,
        NoJobForRequest,
        ResponseStateError,
        InvalidRequestIdentifier,
    ):
        assert issubclass(cls, GearjobsError)


def test_ran_to_completion_has_the_reference_message_and_code() -> None:
    assert ERR_RAN_TO_COMPLETION.message == "This job has run to completion."
    assert ERR_RAN_TO_COMPLETION.response_failure() is ResponseFailure.ERROR


def test_job_function_wraps_a_callable() -> None:
    def body(response: Response) -> None:
        response.success_with_data(ResponseSuccess.OK, 42)

    job = JobFunction(body, fast=True)
    response = ClientResponse()
    job.execute(response)
    assert response.data == 42
    assert isinstance(job, Job)
    assert is_fast(job)
    assert not is_async_job(job)
    assert fingerprint_of(job) == fingerprint_of(JobFunction(body))


def test_async_job_functions_are_recognised() -> None:
    async def body(response: Response) -> None:
        response.success(ResponseSuccess.OK)

    assert is_async_job(JobFunction(body))


def test_fingerprint_defaults_to_the_type_and_may_be_defined_by_the_job() -> None:
    class Plain:
        def execute(self, response: Response) -> None:
            pass

    class Custom(Plain):
        def fingerprint(self) -> str:
            return "custom:1"

    assert fingerprint_of(Plain()) == fingerprint_of(Plain())
    assert fingerprint_of(Custom()) == "custom:1"


def test_job_context_names_the_id_and_user() -> None:
    ident = RequestIdentifier.new()
    assert JobContext(ident).user == "anonymous"
    assert JobContext(ident, "alice").id == ident


def _noop(response: Response) -> None:
    pass


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def execute(self, response: Response) -> None:
        pass


def test_registry_asks_extensions_in_order_and_skips_those_without_a_job() -> None:
    asked: list[str] = []

    def first(request: Any) -> Job:
        asked.append("first")
        raise NoJobForRequest()

    def second(request: Any) -> Job:
        asked.append("second")
        return _Named(f"second:{request}")

    def third(request: Any) -> Job:  # pragma: no cover - never reached
        asked.append("third")
        return _Named("third")

    registry = ExtensionRegistry()
    for func in (first, second, third):
        registry.add(JobExtensionFunc(func))
    job = registry.job_for("r")
    assert isinstance(job, _Named) and job.name == "second:r"
    assert asked == ["first", "second"]


def test_any_other_error_stops_the_search() -> None:
    def invalid(request: Any) -> Job:
        raise SimpleError(ResponseFailure.INVALID_REQUEST, "bad request")

    def later(request: Any) -> Job:  # pragma: no cover - never reached
        return _Named("later")

    registry = ExtensionRegistry([JobExtensionFunc(invalid), JobExtensionFunc(later)])
    with pytest.raises(SimpleError, match="bad request"):
        registry.job_for("r")


def test_registry_without_a_match_raises_no_job_for_request() -> None:
    with pytest.raises(NoJobForRequest):
        ExtensionRegistry().job_for("anything")


def test_module_level_registry_is_a_thin_default() -> None:
    marker = object()

    def ext(request: Any) -> Job:
        if request is marker:
            return _Named("module-level")
        raise NoJobForRequest()

    add_job_extension(JobExtensionFunc(ext))
    try:
        job = job_for(marker)
        assert isinstance(job, _Named) and job.name == "module-level"
    finally:
        default_registry()._extensions.clear()
    assert isinstance(JobExtensionFunc(ext), JobExtension)


def test_initializer_runs_once_under_concurrent_first_use() -> None:
    calls = 0
    gate = threading.Barrier(16)

    def init() -> None:
        nonlocal calls
        calls += 1

    initializer = JobInitializer(JobExtensionFunc(lambda r: _Named("x")), init)
    results: list[Job] = []

    def use() -> None:
        gate.wait()
        results.append(initializer.job_for("r"))

    threads = [threading.Thread(target=use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == 1
    assert len(results) == 16


def test_initializer_failure_is_returned_to_every_later_caller() -> None:
    calls = 0

    def init() -> None:
        nonlocal calls
        calls += 1
        raise SimpleError(ResponseFailure.ERROR, "no database")

    initializer = JobInitializer(JobExtensionFunc(lambda r: _Named("x")), init)
    for _ in range(3):
        with pytest.raises(SimpleError, match="no database"):
            initializer.job_for("r")
    assert calls == 1


@pytest.mark.parametrize("module", [gearjobs, jobs])
def test_exports_are_exactly_the_public_names(module: Any) -> None:
    subpackages = {"cli", "dispatcher", "examples", "http", "jobs", "store"}
    public = {n for n in dir(module) if not n.startswith("_")} - subpackages
    assert set(module.__all__) - {"__version__"} == public
    for name in module.__all__:
        assert hasattr(module, name)
