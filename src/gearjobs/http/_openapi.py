"""The OpenAPI 3.1 document of a server: the API, and each registered job's parameters."""

from __future__ import annotations

from typing import Any

from gearjobs.http._routes import JobRoute
from gearjobs.jobs import ExtensionRegistry, ResponseFailure

__all__ = ("openapi_document",)

ERROR = {"$ref": "#/components/schemas/Error"}
RECORD = {"$ref": "#/components/schemas/Record"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _header(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


REQUEST_HEADERS = [
    _header(
        "X-Request-Id",
        "The request's id: 32 hexadecimal, 22 or 24 URL-safe base64 characters.",
        {"type": "string", "pattern": "^([0-9a-fA-F]{32}|[A-Za-z0-9_-]{22}(==)?)$"},
    ),
    _header(
        "Idempotency-Key",
        "A key of the client's own (1 to 255 visible ASCII characters), mapped to a request id.",
        {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    ),
    _header("Accept", "What to answer with (JSON, a stream, a table or Server-Sent Events)."),
    _header("X-Accept", "Overrides Accept."),
    _header("Last-Event-ID", "With text/event-stream: resume right after this event."),
]

FAILURES = {
    "400": _error("Bad request: a header, the body or a parameter (the message says which)."),
    "401": _error("No token, or a token the server does not know."),
    "404": _error("No such job name, or no job with this id for this user."),
    "406": _error("Cannot answer with what Accept asks for."),
    "409": _error("The job failed with already-exists."),
    "413": _error("The body is larger than the limit."),
    "415": _error("The body has a Content-Encoding (send it uncompressed)."),
    "422": _error("This request id was used for a different request."),
    "429": _error("The queue is full: retry after Retry-After seconds."),
    "500": _error("The job failed with error."),
    "503": _error("The server is shutting down, the job was lost, or the store is unreachable."),
}


def _start_responses() -> dict[str, Any]:
    return {
        "200": {
            "description": "The job's data (JSON, or a table for text/plain, or events).",
            "content": {
                "application/json": {"schema": {}},
                "text/plain": {"schema": {"type": "string"}},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        },
        "202": {
            "description": "Accepted, or a stream: text/plain or application/x-ndjson.",
            "content": {
                "application/json": {"schema": {}},
                "text/plain": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
        "204": {"description": "Success with nothing to say (or a stream not asked for)."},
        **FAILURES,
    }


def _operation(summary: str, parameters_schema: Any, name: str) -> dict[str, Any]:
    return {
        "summary": summary or f"Run the job {name}",
        "operationId": f"run_{name}".replace("-", "_"),
        "parameters": REQUEST_HEADERS,
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": parameters_schema or {"type": "object"}}},
        },
        "responses": _start_responses(),
    }


def openapi_document(
    registry: ExtensionRegistry, routes: list[JobRoute], *, secured: bool, version: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server with this registry and these extension routes."""
    paths: dict[str, Any] = {}
    for extension in registry.extensions:
        jobs = getattr(extension, "jobs", None)
        if isinstance(jobs, dict):
            for name, named in sorted(jobs.items()):
                paths[f"/jobs/{name}"] = {
                    "post": _operation(named.description, named.parameters, name)
                }
    id_parameter = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The request id (32 hex, 22 or 24 URL-safe base64 characters).",
        "schema": {"type": "string"},
    }
    paths["/jobs/{id}"] = {
        "get": {
            "summary": "The record of a job",
            "operationId": "get_job",
            "parameters": [id_parameter],
            "responses": {
                "200": {
                    "description": "The record.",
                    "content": {"application/json": {"schema": RECORD}},
                },
                **{k: FAILURES[k] for k in ("400", "401", "404", "503")},
            },
        }
    }
    paths["/jobs/{id}/output"] = {
        "get": {
            "summary": "The job's answer from its start, then live (a join)",
            "operationId": "get_output",
            "parameters": [id_parameter, *REQUEST_HEADERS[2:]],
            "responses": _start_responses(),
        }
    }
    paths["/jobs"] = {
        "get": {
            "summary": "A page of job records, newest first",
            "operationId": "list_jobs",
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": ["queued", "running", "succeeded", "failed", "lost"],
                    },
                },
                {"name": "name", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                },
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "Records and the cursor of the next page (null at the end).",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "jobs": {"type": "array", "items": RECORD},
                                    "cursor": {"type": ["string", "null"]},
                                },
                            }
                        }
                    },
                },
                **{k: FAILURES[k] for k in ("400", "401", "503")},
            },
        }
    }
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            f"Run the job {route.name}", {"type": "object"}, f"{route.name}_{route.method}"
        )
    paths["/healthz"] = {
        "get": {
            "summary": "200 while the server takes work",
            "operationId": "healthz",
            "security": [],
            "responses": {"200": {"description": "Taking work."}, "503": FAILURES["503"]},
        }
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "gearjobs",
            "version": version,
            "description": "Idempotent, joinable, streaming jobs. POST /jobs/{name} runs a job "
            "once per request id; repeats join it and get the same answer.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["message", "code"],
                    "properties": {
                        "message": {"type": "string"},
                        "code": {"type": "string", "enum": [f.value for f in ResponseFailure]},
                        "data": {},
                    },
                },
                "Record": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "user": {"type": "string"},
                        "state": {"type": "string"},
                        "run": {"type": "integer"},
                        "node": {"type": "string"},
                        "created_at": {"type": "number"},
                        "started_at": {"type": ["number", "null"]},
                        "finished_at": {"type": ["number", "null"]},
                        "status": {"type": ["integer", "null"]},
                        "kept": {"type": "boolean"},
                    },
                },
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if secured:
        document["security"] = [{"bearer": []}]
    return document
