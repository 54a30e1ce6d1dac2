"""The HTTP transport: the ASGI server of the API (and, beside it, the client)."""

from gearjobs.http._app import create_app, record_json
from gearjobs.http._auth import TokenFileError, Tokens
from gearjobs.http._client import AsyncClient, Client, ServerUnreachable
from gearjobs.http._negotiate import Mode, NotAcceptable, negotiate
from gearjobs.http._routes import JobRoute
from gearjobs.http._status import FAILURE_STATUS, failure_status, recorded_status
from gearjobs.http._table import NotATable, render_table

__all__ = (
    "FAILURE_STATUS",
    "AsyncClient",
    "Client",
    "JobRoute",
    "Mode",
    "NotATable",
    "NotAcceptable",
    "ServerUnreachable",
    "TokenFileError",
    "Tokens",
    "create_app",
    "failure_status",
    "negotiate",
    "record_json",
    "recorded_status",
    "render_table",
)
