"""uvicorn's httptools protocol, its parser's 400 in JSON (see `_protocols`)."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gearjobs.http._protocols import not_http_body

__all__ = ("JSONErrorHttpToolsProtocol",)


class JSONErrorHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, its parser's 400 in JSON."""

    def send_400_response(self, msg: str) -> None:
        body = not_http_body(msg)
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
            ]
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()
