"""uvicorn's HTTP protocols, with the 400 its parser sends for a request that is not valid
HTTP/1.1 (a bad Content-Length, two of them, control bytes in a header, a bad chunk) given
in JSON, as every other refusal of the API is. Such a request never reaches the app."""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gearjobs._json import dumps
from gearjobs.jobs import ResponseFailure

__all__ = ("JSONErrorH11Protocol", "http_protocol", "not_http_body")


def not_http_body(msg: str) -> bytes:
    """The JSON body of the 400 for a request the HTTP parser refused (`msg`: uvicorn's)."""
    return dumps(
        {
            "message": f"the request is not valid HTTP/1.1 ({msg.rstrip('.')}): check its "
            "request line, its headers (Content-Length, Transfer-Encoding, names and values) "
            "and its chunks",
            "code": ResponseFailure.INVALID_REQUEST.value,
        }
    )


class JSONErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, its parser's 400 in JSON."""

    def send_400_response(self, msg: str) -> None:
        body = not_http_body(msg)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def http_protocol(name: str) -> type:
    """The protocol class for uvicorn's `--http` NAME (auto: httptools when installed)."""
    if name in ("auto", "httptools"):
        try:
            from gearjobs.http._httptools import JSONErrorHttpToolsProtocol
        except ImportError:
            if name == "httptools":
                raise
        else:
            return JSONErrorHttpToolsProtocol
    return JSONErrorH11Protocol
