"""Server-sent events decoding, sans-IO: feed lines, get whole events."""
from __future__ import annotations

from attrs import frozen


@frozen
class SSEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Dispatches an event at each blank line (WHATWG event-stream rules, the parts we rely on).

    An event not closed by a blank line is never dispatched, as the spec says: the stream was cut,
    and the adapter reports the missing terminal event instead of trusting half a payload.
    """

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> SSEvent | None:
        if not line:
            event = SSEvent(self._event, "\n".join(self._data)) if self._data else None
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None  # comment / keep-alive
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None
