"""A small keep-alive HTTP/1.1 load generator for the storm tests.

httpx spends a millisecond or more of CPU on each request, and its pool slows down badly with
thousands of queued requests; on a 2-core machine that makes the client, not the server, the
thing measured. This sends plain HTTP/1.1 over a fixed number of connections instead.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(chunk[:-2])
        body = b"".join(parts)
    else:
        body = b""
    return Answer(status, headers, body)


async def post_many(
    port: int, requests: list[tuple[str, dict[str, Any], dict[str, str]]], connections: int
) -> list[Answer]:
    """POST each (path, json body, headers) over `connections` keep-alive connections, all
    at once; the answers come back in the order of `requests`."""
    answers: list[Answer | None] = [None] * len(requests)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(requests)):
        queue.put_nowait(i)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                i = queue.get_nowait()
                path, body, headers = requests[i]
                data = json.dumps(body).encode()
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                )
                head += f"Content-Length: {len(data)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(head.encode() + b"\r\n" + data)
                answers[i] = await _read_answer(reader)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return [a for a in answers if a is not None]
