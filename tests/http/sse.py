"""A small Server-Sent Events parser for the tests."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    id: int
    event: str
    data: str


def parse_sse(text: str) -> list[SseEvent]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            fields.setdefault(name, []).append(value)
        events.append(SseEvent(int(fields["id"][0]), fields["event"][0], "\n".join(fields["data"])))
    return events
