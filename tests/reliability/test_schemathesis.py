"""Schemathesis against the server's own OpenAPI document, on a real server: whatever it
generates from the document gets a documented answer, never a 500, with a JSON message."""

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..servers import ServerProcess

DOCUMENTED = {200, 202, 204, 400, 401, 404, 405, 406, 409, 413, 422, 429}


def _shorten(case: Any) -> None:
    if isinstance(case.body, dict):
        if case.operation.path == "/jobs/sleep":
            case.body["seconds"] = 0  # keep generated sleeps short
        if case.operation.path == "/jobs/count":
            case.body["delay"] = 0


def test_the_api_answers_what_its_document_says(tmp_path: Path) -> None:
    with ServerProcess("--examples", "--store", "memory://", cwd=tmp_path) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations: list[Any] = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert len(operations) >= 9
        checked = 0

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def check(operation: Any, data: st.DataObject) -> None:
            nonlocal checked
            case = data.draw(operation.as_strategy())
            _shorten(case)
            response = case.call(base_url=server.url, timeout=30)
            checked += 1
            if case.operation.path == "/jobs/fail" and response.status_code in (500, 503):
                # The fail job answers with the code it is asked for: that is not a fault.
                assert response.json()["code"] == case.body["code"]
                return
            assert response.status_code in DOCUMENTED, (
                case.operation.label,
                response.status_code,
                response.text[:300],
            )
            if response.status_code >= 400:
                assert isinstance(response.json()["message"], str)

        for operation in operations:
            check(operation)
        print(f"schemathesis: {checked} generated requests over {len(operations)} operations")
        assert checked > 100
