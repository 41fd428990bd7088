"""Keep-alive HTTP/1.1 connections to a provider without a proxy: trio streams, httptools' parser.

What an adapter needs is one POST to a fixed origin and its body per network read. httpcore (and
h11 under it) spent ≈ 150 µs of CPU on every request (its pool's locks and traces, h11's header
validation and state machine) and ≈ 15 µs on every chunk of a streamed answer (h11's chunked-body
parser in Python): three quarters of a 200-chunk turn's daemon CPU went to reading the provider
(docs/perf/prov.md). httptools (llhttp, in C; uvicorn's parser) parses the same bytes in well
under a microsecond per chunk. The request head is ours to write: its header block is fixed per
adapter and checked once (``head_block``), the body length is a number.

Failures surface as httpcore's exception classes with its messages, so the one failure seam
(errors.py) classifies them exactly as before; requests through a proxy still go through httpcore.
"""
from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Iterable

import httpcore
import httptools
import trio

READ_SIZE = 64 * 1024


def head_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """``name: value\\r\\n`` lines, checked as h11 checked them: a header that would split the
    request (CR, LF, NUL) or a name that is not a token is refused, never sent."""
    out = []
    for name, value in headers:
        raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
        if not raw_name or any(c in raw_name for c in b" \t\r\n\x00:") or any(c in raw_value for c in b"\r\n\x00"):
            raise httpcore.LocalProtocolError(f"Illegal header name or value {name!r}")
        out.append(b"%b: %b\r\n" % (raw_name, raw_value.strip(b" \t")))
    return b"".join(out)


class Timeouts:
    __slots__ = ("connect", "read", "write")

    def __init__(self, connect: float, read: float, write: float):
        self.connect, self.read, self.write = connect, read, write


class _Connection:
    __slots__ = ("stream", "idle_since", "closed")

    def __init__(self, stream: trio.abc.Stream):
        self.stream = stream
        self.idle_since = 0.0
        self.closed = False

    def readable(self) -> bool:
        """An idle keep-alive connection with something to read was closed (or broken) by the server."""
        stream = self.stream
        if isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        sock = getattr(stream, "socket", None)
        return sock is None or sock.is_readable()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await trio.aclose_forcefully(self.stream)


class Response:
    """The part of ``httpcore.Response`` the seam reads: status, headers, the body whole or per read.

    It is also the parser's callback object: httptools calls ``on_header``, ``on_body`` and
    ``on_message_complete`` from ``feed_data``.
    """

    def __init__(self, pool: OriginPool, conn: _Connection, slot: object, read_timeout: float):
        self._pool = pool
        self._conn: _Connection | None = conn
        self._slot = slot
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._headers_done = False
        self._body: list[bytes] = []
        self._complete = False
        self._keep_alive = False
        self._until_close = False    # no length and not chunked: the body ends when the server closes

    # --- httptools callbacks ---
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:     # an interim answer (100 Continue): the real one follows
            self.headers = []
            return
        self._headers_done = True
        self._keep_alive = self._parser.should_keep_alive()   # known here, cleared once the body ends
        names = {k.lower() for k, _ in self.headers}
        self._until_close = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._headers_done:
            self._complete = True

    # --- reading ---
    async def _read_more(self) -> None:
        conn = self._conn
        if conn is None:
            raise httpcore.ReadError("the response was closed")
        try:
            # A bare cancel scope: ``trio.fail_after`` is a generator-based context manager, a
            # measurable cost on every read of a stream.
            with trio.CancelScope(deadline=trio.current_time() + self._read_timeout) as scope:
                data = await conn.stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc
        if scope.cancelled_caught:
            raise httpcore.ReadTimeout("")
        if not data:
            if self._until_close and self._headers_done:
                self._complete = True
                return
            if not self._headers_done:
                raise httpcore.RemoteProtocolError("Server disconnected without sending a response.")
            raise httpcore.RemoteProtocolError(
                "peer closed connection without sending complete message body: incomplete chunked read")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise httpcore.RemoteProtocolError("the server switched protocols") from None
        except httptools.HttpParserError as exc:
            raise httpcore.RemoteProtocolError(str(exc)) from None

    async def _read_head(self) -> None:
        while not self._headers_done:
            await self._read_more()
        if self._complete:
            await self._release()

    def aiter_stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives: all the bytes one network read completed, joined. A plain
        iterator, not an async generator: one left unfinished (a cancelled turn) leaves nothing
        suspended behind."""
        return self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._body:
            if self._complete or self._conn is None:
                await self._release()
                raise StopAsyncIteration
            await self._read_more()
        body, self._body = self._body, []
        return body[0] if len(body) == 1 else b"".join(body)

    async def aread(self) -> bytes:
        while not self._complete:
            await self._read_more()
        await self._release()
        body, self._body = self._body, []
        return body[0] if len(body) == 1 else b"".join(body)

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(self._slot)
            if self._until_close or not self._keep_alive:
                await conn.close()
            else:
                self._pool.put_back(conn)

    async def aclose(self) -> None:
        """Done with it: a connection whose answer was read to its end stays open for the next
        request; one cut short (an error event, a cancelled turn) is closed at once."""
        if self._complete or self._conn is None:
            await self._release()
            return
        conn, self._conn = self._conn, None
        self._pool.release(self._slot)
        await conn.close()


class OriginPool:
    """Keep-alive connections to one origin (scheme, host, port), reused most recent first.

    ``max_connections`` bounds the connections in use at once (a request past it waits for one);
    at most ``max_keepalive`` idle ones are kept, each for ``keepalive_expiry`` seconds.
    """

    def __init__(self, scheme: bytes, host: str, port: int, *, ssl_context: ssl.SSLContext | None,
                 max_connections: int, max_keepalive: int, keepalive_expiry: float):
        self.scheme, self.host, self.port = scheme, host, port
        self._ssl_context = ssl_context
        self._idle: list[_Connection] = []
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._slots = trio.CapacityLimiter(max_connections)
        self._closed = False

    def release(self, slot: object) -> None:
        self._slots.release_on_behalf_of(slot)

    def put_back(self, conn: _Connection) -> None:
        if self._closed or len(self._idle) >= self._max_keepalive:
            conn.closed = True
            _close_now(conn.stream)
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def _reusable(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < self._expiry and not conn.readable():
                return conn
            conn.closed = True
            _close_now(conn.stream)
        return None

    async def _connect(self, timeouts: Timeouts) -> _Connection:
        try:
            with trio.fail_after(timeouts.connect):
                stream: trio.abc.Stream = await trio.open_tcp_stream(self.host, self.port)
                if self.scheme == b"https":
                    assert self._ssl_context is not None
                    tls = trio.SSLStream(stream, self._ssl_context, server_hostname=self.host, https_compatible=True)
                    try:
                        await tls.do_handshake()
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
                    stream = tls
        except trio.TooSlowError:
            raise httpcore.ConnectTimeout("") from None
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            # trio reports a failed handshake as BrokenResourceError caused by the SSLError: the
            # cause is what the user must read (an untrusted certificate, a wrong host name).
            cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
            raise httpcore.ConnectError(str(cause) or type(cause).__name__) from exc
        return _Connection(stream)

    async def request(self, head: bytes, body: bytes, timeouts: Timeouts) -> Response:
        """Send one request (``head`` ends with its blank line) and read the answer's head."""
        if self._closed:
            raise httpcore.ConnectError("the connection pool is closed")
        slot = object()
        try:   # no schedule point while a slot is free: the send right after is one
            self._slots.acquire_on_behalf_of_nowait(slot)
        except trio.WouldBlock:
            await self._slots.acquire_on_behalf_of(slot)
        try:
            conn = self._reusable() or await self._connect(timeouts)
        except BaseException:
            self._slots.release_on_behalf_of(slot)
            raise
        response = Response(self, conn, slot, timeouts.read)
        try:
            try:
                with trio.CancelScope(deadline=trio.current_time() + timeouts.write) as scope:
                    await conn.stream.send_all(head + body if len(body) < 64 * 1024 else head)
                    if len(body) >= 64 * 1024:
                        await conn.stream.send_all(body)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
            if scope.cancelled_caught:
                raise httpcore.WriteTimeout("")
            await response._read_head()
        except BaseException:
            with trio.CancelScope(shield=True):
                await response.aclose()
            raise
        return response

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


def _close_now(stream: trio.abc.Stream) -> None:
    """Close an idle connection's socket without a network exchange (TLS close_notify included)."""
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    sock = getattr(stream, "socket", None)
    if sock is not None:
        sock.close()

