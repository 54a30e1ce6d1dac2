"""Content negotiation: what a client wants back, from `X-Accept` or `Accept`."""

from __future__ import annotations

import enum

__all__ = ("Mode", "NotAcceptable", "negotiate")


class Mode(enum.Enum):
    """The shape of the answer a client asked for."""

    JSON = "json"
    """One structured answer."""
    STREAM = "stream"
    """A chunked stream (text as text/plain, events as application/x-ndjson)."""
    TABLE = "table"
    """Data rendered as a text table."""
    SSE = "sse"
    """Server-Sent Events, one event per journal entry."""

    @property
    def streams(self) -> bool:
        """True when a streamed answer is sent as a stream."""
        return self is Mode.STREAM or self is Mode.SSE


class NotAcceptable(ValueError):
    """No media range of the header is one this server can answer with."""


def _mode_of(media_range: str) -> Mode | None:
    kind, _, rest = media_range.partition(";")
    kind = kind.strip().lower()
    params = {}
    for param in rest.split(";"):
        name, _, value = param.partition("=")
        if name.strip():
            params[name.strip().lower()] = value.strip().strip('"').lower()
    stream = params.get("stream") == "true"
    if kind == "application/x-ndjson":
        return Mode.STREAM
    if kind in ("application/json", "application/*", "*/*"):
        return Mode.STREAM if stream and kind == "application/json" else Mode.JSON
    if kind in ("text/plain", "text/*"):
        return Mode.STREAM if stream else Mode.TABLE
    if kind == "text/event-stream":
        return Mode.SSE
    return None


def _quality(media_range: str) -> float:
    for param in media_range.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def negotiate(accept: str | None) -> Mode:
    """The mode for an Accept header value; no header (or an empty one) means JSON.

    Media ranges are taken in order of their q-value (q=0 is refused); the first one this
    server knows wins. Raises NotAcceptable when none is known.
    """
    if accept is None or not accept.strip():
        return Mode.JSON
    ranges = [r for r in accept.split(",") if r.strip()]
    ranked = sorted(ranges, key=_quality, reverse=True)
    for media_range in ranked:
        if _quality(media_range) <= 0:
            continue
        mode = _mode_of(media_range)
        if mode is not None:
            return mode
    raise NotAcceptable(
        f"cannot answer with {accept[:200]!r}: use application/json, "
        "application/json;stream=true, application/x-ndjson, text/plain, "
        "text/plain;stream=true or text/event-stream"
    )
