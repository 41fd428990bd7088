"""Plumbing shared by the HTTP adapters: one POST, its failure mapping, and SSE or JSON framing.

The transport: keep-alive HTTP/1.1 connections of our own for an origin reached directly
(``_conn.py``: trio streams, httptools' parser in C, the request head built once per adapter), and
httpcore — httpx's own connection pool — for a request through a proxy from the environment. Both
are configured as httpx configured its client (pool limits, certificates, proxies). An adapter
needs one POST to a fixed URL and the raw body, read per network read; httpx's models and body
chain, then httpcore's pool and h11's parser, cost a turn ≈ 0.5 ms and then ≈ 0.3 ms of CPU per
request and ≈ 15 µs per streamed chunk for nothing (docs/benchmarks.md, "Provider HTTP layer
(session 6)"; docs/perf/prov.md).
"""
from __future__ import annotations

import contextlib
import functools
import json
import ssl
import zlib
from contextlib import aclosing
from typing import Any, Protocol
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import attrs
import httpcore
import httpx
import orjson
import trio
from attrs import frozen

from protocol.canonical import Usage

from actors.planner.tokens import estimate_input_tokens
from actors.providers import errors
from actors.providers._conn import OriginPool, Response as OriginResponse, Timeouts, head_block
from actors.providers._sse import SSEDecoder, SSEvent
from actors.providers.base import Completed, ErrorClass, LLMRequest, ProviderError, StreamEvent

Pricer = Callable[[Usage], Usage]

# A 400 on a request whose estimated size is at least this share of the model's context window is
# taken as a context-length failure (see errors.py: Anthropic has no structured code for it). The
# estimate is ~4 chars/token and can be off by ~25% for code, hence well below 1.
NEAR_CONTEXT_SHARE = 0.75
# httpx's default limits, kept when its client was dropped.
MAX_CONCURRENT_REQUESTS = 100
MAX_KEEPALIVE_CONNECTIONS = 20
KEEPALIVE_EXPIRY_S = 5.0
USER_AGENT = b"orchestrator (httpcore)"


def unpriced(usage: Usage) -> Usage:
    return attrs.evolve(usage, cost_usd=None)


@frozen
class JSONBody:
    """The one decoded body of a non-streamed answer."""

    value: Any


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR when set: what httpx.AsyncClient used.
    return httpx.create_ssl_context()


def environment_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY / ALL_PROXY name for ``url`` unless NO_PROXY exempts its host."""
    parts = urlsplit(url)
    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or proxy_bypass(parts.hostname or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class ProviderHTTP:
    """Connection pools that adapters may share: one per origin reached directly (``_conn.py``),
    one httpcore pool per proxy in use."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context    # None: the system's roots (or SSL_CERT_FILE / SSL_CERT_DIR), as httpx
        self._pools: dict[str, httpcore.AsyncHTTPProxy] = {}
        self._origins: dict[tuple[bytes, str, int], OriginPool] = {}
        self.is_closed = False

    def pool_for(self, url: str) -> httpcore.AsyncHTTPProxy | OriginPool:
        proxy = environment_proxy(url)
        if proxy is None:
            parsed = httpcore.URL(url)
            scheme = parsed.scheme
            if scheme not in (b"http", b"https"):
                raise httpcore.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme.decode()}://'.")
            key = (scheme, parsed.host.decode("ascii"), parsed.port or (443 if scheme == b"https" else 80))
            origin = self._origins.get(key)
            if origin is None:
                origin = self._origins[key] = OriginPool(
                    *key, ssl_context=(self._ssl or _ssl_context()) if scheme == b"https" else None,
                    max_connections=MAX_CONCURRENT_REQUESTS, max_keepalive=MAX_KEEPALIVE_CONNECTIONS,
                    keepalive_expiry=KEEPALIVE_EXPIRY_S)
            return origin
        pool = self._pools.get(proxy)
        if pool is None:
            pool = self._pools[proxy] = httpcore.AsyncHTTPProxy(
                proxy_url=proxy, ssl_context=self._ssl or _ssl_context(), max_connections=MAX_CONCURRENT_REQUESTS,
                max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS, keepalive_expiry=KEEPALIVE_EXPIRY_S)
        return pool

    async def __aenter__(self) -> ProviderHTTP:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.is_closed = True
        pools: list[httpcore.AsyncHTTPProxy | OriginPool] = [*self._pools.values(), *self._origins.values()]
        self._pools, self._origins = {}, {}
        for pool in pools:
            await pool.aclose()


def _content_decoder(encoding: str) -> Callable[[bytes], bytes] | None:
    """We ask for no content coding; a server that applies gzip or deflate anyway is still read.
    None: the bytes are the body. Raises ``ValueError`` for a coding we cannot undo."""
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32).decompress   # either header, detected
    raise ValueError(f"unsupported content-encoding {encoding!r}")


def _body(raw: bytes, encoding: str) -> bytes:
    """A whole body decoded; undecodable bytes are returned as they came (the caller's JSON
    parse then fails, or, for an error answer, the status alone decides)."""
    try:
        decode = _content_decoder(encoding)
        return raw if decode is None else decode(raw)
    except (ValueError, zlib.error):
        return raw


async def _finish(response: httpcore.Response | OriginResponse, chunks: AsyncIterator[bytes]) -> None:
    """Close the response, then run its chunk iterator to its end.

    httpcore reads a body through nested async generators. Left suspended (we stopped early: an
    error event, or our caller closed us), they are garbage-collected unfinished and trio warns
    about each one (encode/httpx#3686). Once the connection is closed, the next read fails inside
    the innermost generator, so the whole chain finishes by that exception instead.
    """
    await response.aclose()
    try:
        async for _ in chunks:
            pass
    except errors.TRANSPORT_ERRORS:
        pass




class AnswerState(Protocol):
    """An adapter's sans-IO fold of one answer, as the shared stream loop drives it."""

    @property
    def finished(self) -> bool: ...

    @property
    def text(self) -> str: ...

    def feed_body(self, value: Any) -> list[StreamEvent]:
        """A whole non-streamed answer (the server ignored ``stream``)."""
        ...

    def feed_data(self, data: str) -> list[StreamEvent]:
        """One SSE event's data."""
        ...

    def completed(self, model: str) -> Completed: ...


class HTTPAdapter:
    """Owns (or borrows) a ``ProviderHTTP`` and turns one POST into batches of SSE events or one
    JSON body.

    A borrowed pool is shared with other adapters and is not closed by ``aclose``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        http: ProviderHTTP | None = None,
        timeout_s: float = 600.0,
        streaming: bool = True,
        max_context_tokens: int | None = None,
        pricer: Pricer | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.streaming = streaming
        self.max_context_tokens = max_context_tokens
        # Without a pricer the cost is unknown (None), never a silent 0.
        self._price: Pricer = pricer or unpriced
        # ``timeout_s`` bounds each network step (connect, every read between stream chunks), so
        # a long answer that keeps streaming is never cut, but a stalled one is.
        self._extensions = {"timeout": {
            "connect": min(timeout_s, 30.0), "read": timeout_s, "write": timeout_s, "pool": timeout_s,
        }}
        self._timeouts = Timeouts(min(timeout_s, 30.0), timeout_s, timeout_s)
        self._owns_http = http is None
        self._http = http if http is not None else ProviderHTTP()
        self._pool: httpcore.AsyncHTTPProxy | OriginPool | None = None
        self._urls: dict[str, tuple[httpcore.URL, bytes]] = {}
        # The request line and header block per (path, the adapter's headers): fixed per provider.
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}
        # httpcore's pool scans every queued request on each operation; past the pool size a burst
        # of requests (1,000 concurrent sessions) stalls the whole event loop. Wait here instead.
        self._slots = trio.CapacityLimiter(MAX_CONCURRENT_REQUESTS)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def near_context_limit(self, request: LLMRequest) -> bool:
        if not self.max_context_tokens:
            return False
        needed = estimate_input_tokens(request.system, request.tools, request.messages) + request.max_tokens
        return needed >= NEAR_CONTEXT_SHARE * self.max_context_tokens

    def _target(self, path: str) -> tuple[httpcore.URL, bytes]:
        target = self._urls.get(path)
        if target is None:
            url = httpcore.URL(self.base_url + path)
            default_port = {b"http": 80, b"https": 443}.get(url.scheme)
            host = url.host if url.port in (None, default_port) else b"%b:%d" % (url.host, url.port)
            target = self._urls[path] = (url, host)
        return target

    def _head(self, path: str, headers: dict[str, str]) -> bytes:
        """The request line and every header but the body's length, built once per adapter."""
        key = (path, tuple(headers.items()))
        head = self._heads.get(key)
        if head is None:
            url, host = self._target(path)
            fixed = head_block([("host", host.decode("ascii")), ("user-agent", USER_AGENT.decode()),
                                ("content-type", "application/json"), *headers.items()])
            head = self._heads[key] = b"POST %b HTTP/1.1\r\n%b" % (url.target, fixed)
        return head

    def _request(self, path: str, headers: dict[str, str], content: bytes) -> httpcore.Request:
        target = self._target(path)
        wire = [(b"host", target[1]), (b"user-agent", USER_AGENT), (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(content))]
        wire += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        return httpcore.Request(b"POST", target[0], headers=wire, content=content, extensions=self._extensions)

    async def answer(
        self, path: str, headers: dict[str, str], body: dict, request: LLMRequest, state: AnswerState, *,
        cut_short: str,
    ) -> AsyncGenerator[StreamEvent, None]:
        """One request's events through ``state``, then exactly one priced ``Completed``; a
        failure carries the text streamed so far. ``cut_short`` is the error for a stream that
        ends before the API's final event."""
        items = self.post_events(path, headers, body, near_context_limit=lambda: self.near_context_limit(request))
        del body  # post_events drops it once encoded: a streaming answer keeps only the bytes
        try:
            async with aclosing(items):
                async for batch in items:
                    if isinstance(batch, JSONBody):
                        for event in state.feed_body(batch.value):
                            yield event
                        continue
                    for _, data in batch:
                        for event in state.feed_data(data):
                            yield event
            if not state.finished:
                raise ProviderError(ErrorClass.NETWORK, cut_short)
            done = state.completed(request.model)
        except ProviderError as exc:
            exc.partial_text = exc.partial_text or state.text
            raise
        yield Completed(done.message, self._price(done.usage))

    async def post_events(
        self, path: str, headers: dict[str, str], body: dict, *,
        near_context_limit: bool | Callable[[], bool] = False,
    ) -> AsyncGenerator[list[SSEvent] | JSONBody, None]:
        """Yield the whole events (``(event, data)`` pairs) of each read of an event stream (never
        an empty list), or one ``JSONBody`` of a JSON answer.

        The framing follows the response's content type, not what we asked for, since proxies
        and compatible servers sometimes ignore ``stream``.
        """
        content = encode_body(body)
        del body  # only the encoded bytes need to live while the answer streams
        try:
            pool = self._pool
            if pool is None:
                pool = self._pool = self._http.pool_for(self.base_url)
            # An origin pool bounds its connections itself, without a schedule point while one is free.
            slots = contextlib.nullcontext() if isinstance(pool, OriginPool) else self._slots
            async with slots:
                response: httpcore.Response | OriginResponse
                if isinstance(pool, OriginPool):
                    head = self._head(path, headers) + b"content-length: %d\r\n\r\n" % len(content)
                    response = await pool.request(head, content, self._timeouts)
                else:
                    response = await pool.handle_async_request(self._request(path, headers, content))
                fields = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
                encoding = fields.get("content-encoding", "").strip().lower()
                if response.status >= 400 or not fields.get("content-type", "").startswith("text/event-stream"):
                    try:
                        raw = _body(await response.aread(), encoding)  # to the end: no generator left suspended
                    finally:
                        await response.aclose()
                    if response.status >= 400:
                        # Judged only for an error: estimating the whole history per call is O(history).
                        near = near_context_limit() if callable(near_context_limit) else near_context_limit
                        raise errors.from_response(response.status, raw, fields, near_context_limit=near)
                    try:
                        value = json.loads(raw)
                    except ValueError:
                        raise errors.malformed("response body is not JSON") from None
                    yield JSONBody(value)
                    return
                decoder = SSEDecoder()
                chunks = response.aiter_stream()
                try:
                    decode = _content_decoder(encoding)
                    async for raw in chunks:
                        events = decoder.feed(raw if decode is None else decode(raw))
                        if events:
                            yield events
                except (ValueError, zlib.error) as exc:
                    raise errors.malformed(f"event stream: {exc}") from None
                finally:
                    await _finish(response, chunks)
        except errors.TRANSPORT_ERRORS as exc:
            raise errors.from_exception(exc) from exc


def encode_body(body: dict) -> bytes:
    """Compact UTF-8 JSON, the bytes httpx's ``json=`` sent. orjson writes them 20× faster than
    ``json.dumps`` (a long session's whole history is encoded on every call); what it refuses (a
    key that is not a string, an integer past 64 bits) is written by ``json`` as before. A NaN or
    infinity is written as ``null`` (``json`` with ``allow_nan=False`` raised instead)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def load_json(data: str) -> Any:
    """One SSE event's payload. orjson parses a stream chunk in a quarter of ``json.loads``' time;
    what it refuses (a lone surrogate escape, NaN) goes to ``json``, so exactly what ``json``
    accepts is accepted. (Whole bodies stay with ``json``: orjson reads an integer past 64 bits as
    a float, which a tool call's input must never become.)"""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except ValueError:
            raise errors.malformed("event data is not JSON") from None
