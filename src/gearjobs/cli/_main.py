"""The `gearjobs` command."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import ipaddress
import json
import logging
import math
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click
import httpx

from gearjobs._json import loads as strict_json
from gearjobs.cli._output import TerminalResponse
from gearjobs.http._client import DEFAULT_URL, AsyncClient, Client, ServerUnreachable
from gearjobs.jobs import ExtensionRegistry, GearjobsError, JobExtension, RequestIdentifier

__all__ = ("main",)

DEFAULT_PORT = 43273
GC_THRESHOLDS = (10_000, 10, 10)
"""The collector's thresholds while serving (see `serve`)."""


def _env(name: str) -> str:
    return f"GEARJOBS_{name}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gearjobs")
def main() -> None:
    """gearjobs: idempotent, joinable, streaming jobs."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_extensions(spec: str) -> list[JobExtension]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("expected MODULE:ATTR", param_hint="--app")
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        message = f"cannot import {module_name}: {exc}"
        raise click.BadParameter(message, param_hint="--app") from None
    try:
        target: Any = getattr(module, attr)
    except AttributeError:
        raise click.BadParameter(f"{module_name} has no {attr}", param_hint="--app") from None
    if callable(target) and not hasattr(target, "job_for"):
        target = target()
    if isinstance(target, ExtensionRegistry):
        return list(target.extensions)
    if hasattr(target, "job_for"):
        return [target]
    if isinstance(target, list | tuple) and all(hasattr(t, "job_for") for t in target):
        return list(target)
    raise click.BadParameter(
        f"{spec} is not a job extension, a list of them or an ExtensionRegistry",
        param_hint="--app",
    )


_AT_LEAST_1 = click.IntRange(min=1)


_F = TypeVar("_F", bound=Callable[..., Any])


def _setting(flag: str, default: Any, kind: Any, help: str | None = None) -> Callable[[_F], _F]:
    """A numeric option of `serve`: its default shown, read from GEARJOBS_<NAME> too."""
    envvar = _env(flag.removeprefix("--").upper().replace("-", "_"))
    return click.option(
        flag, default=default, show_default=True, envvar=envvar, type=kind, help=help
    )


MAX_SECONDS = 10 * 365 * 86400.0


class Seconds(click.FloatRange):
    """A number of seconds, up to ten years: positive, or (`positive=False`) >= 0. (A float
    option took inf, nan and 1e300; on Redis every answer's write then failed.)"""

    name = "number of seconds"

    def __init__(self, *, positive: bool) -> None:
        super().__init__(min=0.0, min_open=positive, max=MAX_SECONDS)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):  # between any two bounds, to the range's comparisons
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar=_env("HOST"))
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    envvar=_env("PORT"),
    type=click.IntRange(0, 65535),
)
@click.option(
    "--store",
    "store_url",
    default="sqlite:///gearjobs.db",
    show_default=True,
    envvar=_env("STORE"),
    help="sqlite:///PATH, memory:// or redis://HOST:PORT/DB",
)
@click.option("--examples/--no-examples", default=False, envvar=_env("EXAMPLES"))
@click.option("--app", "apps", multiple=True, envvar=_env("APP"), help="MODULE:ATTR extensions")
@click.option("--tokens", type=click.Path(dir_okay=False), envvar=_env("TOKENS"))
@_setting("--queue-fast", 1024, _AT_LEAST_1)
@_setting("--queue-slow", 256, _AT_LEAST_1)
@_setting("--concurrent", 16, _AT_LEAST_1)
@_setting("--track-duplicate-ids", 100_000, click.IntRange(min=0))
@_setting(
    "--retention",
    86400.0,
    Seconds(positive=True),
    help="seconds a finished job's answer is kept (at most ten years)",
)
@click.option("--node", envvar=_env("NODE"), help="this server's name (default HOST:PORT)")
@_setting("--close-timeout", 30.0, Seconds(positive=False))
@_setting("--body-limit", 100 * 1024, click.IntRange(min=0))
@click.option("--log-level", default="info", show_default=True, envvar=_env("LOG_LEVEL"))
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar=_env("LOG_FORMAT"),
)
@click.option(
    "--loop",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default="auto",
    show_default=True,
    envvar=_env("LOOP"),
    help="event loop (auto: uvloop when installed)",
)
@click.option(
    "--http",
    "http_impl",
    type=click.Choice(["auto", "h11", "httptools"]),
    default="auto",
    show_default=True,
    envvar=_env("HTTP"),
    help="HTTP/1.1 parser (auto: httptools when installed)",
)
@click.option(
    "--log-params/--no-log-params",
    default=False,
    envvar=_env("LOG_PARAMS"),
    help="put each job's parameters in its log lines (off: they may hold secrets)",
)
@click.option(
    "--hold-answers/--no-hold-answers",
    default=True,
    show_default=True,
    envvar=_env("HOLD_ANSWERS"),
    help="send a job's answer only once the store has written it, so that no answer given "
    "is lost to a crash (off: answers go out at once and are written a few ms later; a crash "
    "in between runs those jobs again on retry)",
)
def serve(
    host: str,
    port: int,
    store_url: str,
    examples: bool,
    apps: tuple[str, ...],
    tokens: str | None,
    queue_fast: int,
    queue_slow: int,
    concurrent: int,
    track_duplicate_ids: int,
    retention: float,
    node: str | None,
    close_timeout: float,
    body_limit: int,
    log_level: str,
    log_format: str,
    loop: str,
    http_impl: str,
    log_params: bool,
    hold_answers: bool,
) -> None:
    """Run the HTTP API under uvicorn."""
    import uvicorn

    from gearjobs.dispatcher import Dispatcher, JobLog, JsonLogFormatter
    from gearjobs.examples import example_jobs
    from gearjobs.http import TokenFileError, Tokens, create_app
    from gearjobs.http._protocols import http_protocol
    from gearjobs.store import redacted, store_from_url

    token_table = None
    if tokens is not None:
        try:
            token_table = Tokens.load(tokens)
        except TokenFileError as exc:
            raise click.BadParameter(str(exc), param_hint="--tokens") from None
    elif not _is_loopback(host):
        raise click.BadParameter(
            f"refusing to listen on {host} without a token file: "
            "give --tokens FILE, or bind a loopback address",
            param_hint="--host",
        )
    node_name = node or f"{socket.gethostname()}:{port}"
    registry = ExtensionRegistry()
    if examples:
        registry.add(example_jobs(node=node_name))
    for spec in apps:
        for extension in _load_extensions(spec):
            registry.add(extension)
    try:
        store = store_from_url(store_url, retention=retention)
        dispatcher = Dispatcher(
            store=store,
            queue_fast=queue_fast,
            queue_slow=queue_slow,
            concurrent=concurrent,
            track_duplicate_ids=track_duplicate_ids,
            retention=retention,
            node=node_name,
            observers=[JobLog(with_detail=log_params)],
            hold_answers=hold_answers,
        )
    except GearjobsError as exc:
        raise click.BadParameter(str(exc)) from None
    # A file another server writes, a Redis away, a node name in use: say so, not in a
    # traceback.
    try:
        store.check_ready(node_name)
    except GearjobsError as exc:
        raise click.ClickException(str(exc)) from None
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=log_level.upper(), handlers=[handler], force=True)
    app = create_app(
        dispatcher, registry, tokens=token_table, body_limit=body_limit, close_timeout=close_timeout
    )
    if token_table is not None:
        _reload_tokens_on_sighup(token_table)
    shown = redacted(store_url)
    click.echo(f"gearjobs serving on http://{host}:{port} (store {shown}, node {node_name})")
    # A request makes many short-lived containers. At CPython's default threshold (700) the
    # cyclic collector ran every few requests, and its older generations (which grow with the
    # records and ids held) often: 10,000 gave 15-20% more requests a second under wrk.
    gc.set_threshold(*GC_THRESHOLDS)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        # uvicorn builds each access line's fields before asking whether the level shows it
        # (about a microsecond a request): off when the level hides the lines anyway.
        access_log=log_level.lower() in ("trace", "debug", "info"),
        loop=loop,
        http=http_protocol(http_impl),  # uvicorn's, with the parser's 400 in JSON
        # With JSON logs, uvicorn's own lines go through the same JSON handler.
        log_config=None if log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        # Open streams may run as long as the jobs they follow are given to finish.
        timeout_graceful_shutdown=max(1, int(close_timeout) + 1),
    )
    server = _server(config, app)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(3)  # as uvicorn.run does when the app did not start


def _server(config: Any, app: Any) -> Any:
    """uvicorn's Server, which on the signal to stop also begins closing the dispatcher at
    once: uvicorn waits for open connections first and runs the app's shutdown only after,
    so running jobs would get the close timeout twice over, queued jobs would start, and
    open streams would be cut without their end."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            shutdown_soon = getattr(app, "shutdown_soon", None)
            if callable(shutdown_soon):
                shutdown_soon()

    return Server(config=config)


def _reload_tokens_on_sighup(tokens: Any) -> None:
    """`kill -HUP` re-reads the token file; a broken file keeps the tokens in use."""
    log = logging.getLogger("gearjobs.cli")

    def reload(signum: int, frame: object) -> None:
        try:
            tokens.reload()
            log.warning("token file %s read again: %d tokens", tokens.path, len(tokens))
        except GearjobsError as exc:
            log.error("token file not reloaded, the old tokens stay in use: %s", exc)

    signal.signal(signal.SIGHUP, reload)


def _server_url(server: str) -> str:
    try:
        httpx.URL(server)
        if not server.startswith(("http://", "https://")):
            raise ValueError("expected http:// or https://")
    except (httpx.InvalidURL, ValueError) as exc:
        raise click.BadParameter(f"{server!r}: {exc}", param_hint="--server") from None
    return server


def _client(server: str, token: str | None, tries: int) -> Client:
    return Client(_server_url(server), token=token, tries=tries)


def _follow(
    server: str,
    token: str | None,
    tries: int,
    exchange: Callable[[AsyncClient], Coroutine[Any, Any, object]],
) -> None:
    """Run `exchange` on an asyncio client, for an answer that may go on until Ctrl-C.

    A blocking socket read can miss Ctrl-C: a SIGINT that comes after Python last looked
    for signals and before the read began leaves the read waiting for data that a silent
    server never sends. asyncio's loop wakes on a signal whenever it comes; asyncio.run then
    cancels the exchange (which flushes what it held back) and raises KeyboardInterrupt.
    """
    url = _server_url(server)

    async def follow() -> None:
        async with AsyncClient(url, token=token, tries=tries) as client:
            await exchange(client)

    asyncio.run(follow())


class _IdCommand(click.Command):
    """A command taking a request ID that may start with "-".

    One base64 id in 64 does; click would read it as options. Such an argument, when it is a
    valid id and not the value of an option, is moved behind "--" before click parses.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.params
            if isinstance(param, click.Option) and not param.is_flag
            for name in param.opts
        }
        kept: list[str] = []
        ids: list[str] = []
        rest: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                rest = args[index + 1 :]
                break
            if arg in takes_value:
                kept.extend(args[index : index + 2])
                index += 2
                continue
            if arg.startswith("-") and _is_request_id(arg):
                ids.append(arg)
            else:
                kept.append(arg)
            index += 1
        if ids:
            args = [*kept, "--", *ids, *rest]
        return super().parse_args(ctx, args)


def _is_request_id(arg: str) -> bool:
    try:
        RequestIdentifier.parse(arg)
    except GearjobsError:
        return False
    return True


def _job_id(ident: str) -> str:
    """A request id given on the command line, checked here (a bad one is a usage error)."""
    try:
        return str(RequestIdentifier.parse(ident))
    except GearjobsError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None


server_option = click.option(
    "--server", default=DEFAULT_URL, show_default=True, envvar=_env("SERVER")
)
token_option = click.option("--token", envvar=_env("TOKEN"), help="bearer token")
tries_option = click.option(
    "--tries",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="tries before giving up",
)


def _unreachable(exc: ServerUnreachable) -> NoReturn:
    click.echo(f"gearjobs: {exc}", err=True)
    sys.exit(3)


def _get_json(
    server: str, token: str | None, tries: int, path: str, query: dict[str, str] | None = None
) -> Any:
    """GET a JSON answer; exit 1 with the server's message on an error, 3 when unreachable."""
    with _client(server, token, tries) as client:
        try:
            answer = client.get(path, query)
        except ServerUnreachable as exc:
            _unreachable(exc)
    if answer.status_code != 200:
        try:
            message = answer.json().get("message", answer.text)
        except ValueError:
            message = answer.text
        click.echo(f"error: {message}", err=True)
        sys.exit(1)
    return answer.json()


@main.command()
@click.argument("name")
@click.argument("params", required=False, default="{}")
@click.option("--id", "ident", help="request id (32 hex, 22 or 24 base64 characters)")
@click.option("--idempotency-key", help="a key of your own, mapped to a request id")
@click.option("--table", is_flag=True, help="show data as a table")
@server_option
@token_option
@tries_option
def run(
    name: str,
    params: str,
    ident: str | None,
    idempotency_key: str | None,
    table: bool,
    server: str,
    token: str | None,
    tries: int,
) -> None:
    """Run job NAME with PARAMS (a JSON object) and show its answer."""
    try:
        values = strict_json(params)
    except (ValueError, RecursionError) as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="PARAMS") from None
    if not isinstance(values, dict):
        raise click.BadParameter("must be a JSON object", param_hint="PARAMS")
    if ident is not None and idempotency_key is not None:
        raise click.UsageError("give --id or --idempotency-key, not both")
    request_id: RequestIdentifier | None = None  # with a key, the server maps it
    shown: RequestIdentifier  # the job's id, as `attach` and `status` take it
    if idempotency_key is not None:
        try:
            shown = RequestIdentifier.for_idempotency_key(idempotency_key)
        except GearjobsError as exc:
            raise click.BadParameter(str(exc), param_hint="--idempotency-key") from None
    elif ident is not None:
        try:
            request_id = shown = RequestIdentifier.parse(ident)
        except GearjobsError as exc:
            raise click.BadParameter(str(exc), param_hint="--id") from None
    else:
        request_id = shown = RequestIdentifier.new()
    response = TerminalResponse()
    accept = "text/plain" if table else "application/json;stream=true"

    def exchange(client: AsyncClient) -> Coroutine[Any, Any, object]:
        return client.run(
            name, values, response, id=request_id, idempotency_key=idempotency_key, accept=accept
        )

    try:
        _follow(server, token, tries, exchange)
        if table and response.nothing:  # a stream is answered only to who asks for one
            click.echo(
                f"gearjobs: job {shown} answered no data to show as a table; if {name} "
                f"streams, run it without --table to see its stream",
                err=True,
            )
        _finish(response)
    except ServerUnreachable as exc:
        _unreachable(exc)
    except KeyboardInterrupt:  # the job goes on: say how to see it again
        if response.kind is not None:  # the server had answered: the job is there
            said = f"job {shown} goes on (gearjobs attach {shown}, gearjobs status {shown})"
        else:
            said = f"no answer yet; if the server took job {shown}, gearjobs status {shown}"
        click.echo(f"\ngearjobs: stopped watching; {said}", err=True)
        sys.exit(130)


def _finish(response: TerminalResponse) -> None:
    """Exit 1 if the job failed (the client reports a stream's error marker as a failure)."""
    response.finish()
    if response.error is not None:
        sys.exit(1)


@main.command(cls=_IdCommand)
@click.argument("ident", metavar="ID")
@server_option
@token_option
@tries_option
def attach(ident: str, server: str, token: str | None, tries: int) -> None:
    """Show the answer of job ID from its start, then live."""
    ident = _job_id(ident)
    response = TerminalResponse()
    try:
        _follow(server, token, tries, lambda client: client.attach(ident, response))
        _finish(response)
    except ServerUnreachable as exc:
        _unreachable(exc)


@main.command(cls=_IdCommand)
@click.argument("ident", metavar="ID")
@server_option
@token_option
@tries_option
def status(ident: str, server: str, token: str | None, tries: int) -> None:
    """Show the record of job ID."""
    ident = _job_id(ident)
    record = _get_json(server, token, tries, f"/jobs/{ident}")
    click.echo(json.dumps(record, indent=2))


@main.command(name="ls")
@click.option("--state", type=click.Choice(["queued", "running", "succeeded", "failed", "lost"]))
@click.option("--name", help="only jobs of this name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@server_option
@token_option
@tries_option
def list_jobs(
    state: str | None,
    name: str | None,
    limit: int,
    as_json: bool,
    server: str,
    token: str | None,
    tries: int,
) -> None:
    """List jobs, newest first."""
    query = {"limit": str(limit)}
    if state:
        query["state"] = state
    if name:
        query["name"] = name
    jobs = _get_json(server, token, tries, "/jobs", query)["jobs"]
    if as_json:
        click.echo(json.dumps(jobs, indent=2))
        return
    from gearjobs.http import render_table

    rows = [
        {
            **{k: j[k] for k in ("id", "name", "state", "status", "user")},
            "created": datetime.fromtimestamp(j["created_at"]).isoformat(timespec="seconds"),
        }
        for j in jobs
    ]
    click.echo(render_table(rows), nl=False)
