"""GET /openapi.json: the API and each registered job's parameters, valid OpenAPI 3.1."""

import httpx
from openapi_spec_validator import validate


async def test_the_document_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    document = r.json()
    validate(document)
    assert document["openapi"] == "3.1.0"


async def test_it_describes_each_registered_job_and_its_parameters(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    for name in ("echo", "sleep", "count", "fail", "tally"):
        assert "post" in paths[f"/jobs/{name}"]
    sleep = paths["/jobs/sleep"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert sleep["properties"]["seconds"]["maximum"] == 300
    assert sleep["properties"]["lines"]["maximum"] == 10000
    for path in ("/jobs/{id}", "/jobs/{id}/output", "/jobs", "/healthz"):
        assert path in paths
    headers = {p["name"] for p in paths["/jobs/echo"]["post"]["parameters"]}
    assert {"X-Request-Id", "Idempotency-Key", "Accept", "X-Accept"} <= headers
