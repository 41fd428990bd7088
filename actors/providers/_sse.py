"""Server-sent events decoding, sans-IO: feed the bytes of each network read, get its whole events.

One call per read, not per line: the read is split once, decoded once, and scanned in a plain loop
(a stream of 200 small chunks costs a few hundred line scans, not a chain of async generators per
line). UTF-8 may be cut anywhere between reads, but never inside a line break, so only whole lines
are decoded.
"""
from __future__ import annotations

_BOM = b"\xef\xbb\xbf"

# (event type or None, data): a plain tuple, built once per event of every stream.
SSEvent = tuple[str | None, str]


class SSEDecoder:
    """Dispatches an event at each blank line (WHATWG event-stream rules, the parts we rely on).

    Lines end in LF, CRLF or a lone CR. An event not closed by a blank line is never dispatched, as
    the spec says: the stream was cut, and the adapter reports the missing terminal event instead
    of trusting half a payload.
    """

    def __init__(self) -> None:
        self._tail = b""            # bytes after the last line break seen
        self._after_cr = False      # the last read ended in CR: a leading LF is that CRLF's rest
        self._started = False       # a byte-order mark may only open the stream
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEvent]:
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._tail + chunk if self._tail else chunk
        if not self._started and buf:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._tail = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
        if b"\r" in buf:
            self._after_cr = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._tail = buf
            return []
        self._tail = buf[cut + 1:]
        out: list[SSEvent] = []
        event, data = self._event, self._data
        for line in buf[:cut].decode("utf-8", "replace").split("\n"):
            if not line:
                if data:
                    out.append((event, data[0] if len(data) == 1 else "\n".join(data)))
                    data = []
                event = None
            elif line.startswith("data: "):   # nearly every line: no partition, no second slice
                data.append(line[6:])
            elif line[0] != ":":               # ":" opens a comment / keep-alive
                field, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if field == "data":
                    data.append(value)
                elif field == "event":
                    event = value
        self._event, self._data = event, data
        return out
