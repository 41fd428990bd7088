"""Server-sent events, parsed from a line iterator (sans-IO apart from the iteration itself)."""
from __future__ import annotations

from typing import AsyncIterator

from attrs import frozen


@frozen
class SSEvent:
    event: str | None
    data: str


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEvent]:
    """Dispatch an event at each blank line, per the WHATWG event-stream rules we rely on."""
    event: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SSEvent(event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    # An event not closed by a blank line is dropped (as the spec says): the stream was cut, and
    # the adapter reports the missing terminal event instead of trusting half a payload.
