"""Plumbing shared by the HTTP adapters: one POST, its failure mapping, and SSE or JSON framing."""
from __future__ import annotations

import json
from typing import Any
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import attrs
import httpx
import trio

from protocol.canonical import Usage

from actors.planner.tokens import estimate_input_tokens
from actors.providers import errors
from actors.providers._sse import SSEDecoder, SSEvent
from actors.providers.base import LLMRequest

Pricer = Callable[[Usage], Usage]

# A 400 on a request whose estimated size is at least this share of the model's context window is
# taken as a context-length failure (see errors.py: Anthropic has no structured code for it). The
# estimate is ~4 chars/token and can be off by ~25% for code, hence well below 1.
NEAR_CONTEXT_SHARE = 0.75
MAX_CONCURRENT_REQUESTS = 100   # httpx's default pool size


def unpriced(usage: Usage) -> Usage:
    return attrs.evolve(usage, cost_usd=None)


async def _finish(resp: httpx.Response, lines: AsyncIterator[str]) -> None:
    """Close the response, then run its line iterator to its end.

    httpx reads a body through a chain of nested async generators. Left suspended (we stopped
    early: an error event, or our caller closed us), they are garbage-collected unfinished and trio
    warns about each one (encode/httpx#3686). Once the connection is closed, the next read fails
    inside the innermost generator, so the whole chain finishes by that exception instead.
    """
    await resp.aclose()
    try:
        async for _ in lines:
            pass
    except (httpx.HTTPError, httpx.StreamError):
        pass


class HTTPAdapter:
    """Owns (or borrows) an ``httpx.AsyncClient`` and turns one POST into SSE events or one JSON body.

    A borrowed client is shared with other adapters and is not closed by ``aclose``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        http: httpx.AsyncClient | None = None,
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
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 30.0))
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=self._timeout)
        # httpx's pool scans every queued request on each operation; past the pool size a burst of
        # requests (1,000 concurrent sessions) stalls the whole event loop. Wait here instead.
        self._slots = trio.CapacityLimiter(MAX_CONCURRENT_REQUESTS)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def near_context_limit(self, request: LLMRequest) -> bool:
        if not self.max_context_tokens:
            return False
        needed = estimate_input_tokens(request.system, request.tools, request.messages) + request.max_tokens
        return needed >= NEAR_CONTEXT_SHARE * self.max_context_tokens

    async def post_events(
        self, path: str, headers: dict[str, str], body: dict, *,
        near_context_limit: bool | Callable[[], bool] = False,
    ) -> AsyncGenerator[SSEvent | Any, None]:
        """Yield ``SSEvent``s of an event stream, or the one decoded body of a JSON answer.

        The framing follows the response's content type, not what we asked for, since proxies
        and compatible servers sometimes ignore ``stream``.
        """
        try:
            async with self._slots:
                async with self._http.stream(
                    "POST", self.base_url + path, json=body, headers=headers, timeout=self._timeout
                ) as resp:
                    if resp.status_code >= 400:
                        raw = await resp.aread()
                        # Judged only for an error: estimating the whole history per call is O(history).
                        near = near_context_limit() if callable(near_context_limit) else near_context_limit
                        raise errors.from_response(resp.status_code, raw, resp.headers, near_context_limit=near)
                    if resp.headers.get("content-type", "").startswith("text/event-stream"):
                        decoder = SSEDecoder()
                        lines = resp.aiter_lines()
                        try:
                            async for line in lines:
                                event = decoder.feed(line)
                                if event is not None:
                                    yield event
                        finally:
                            await _finish(resp, lines)
                    else:
                        raw = await resp.aread()
                        try:
                            yield json.loads(raw)
                        except ValueError:
                            raise errors.malformed("response body is not JSON") from None
        except httpx.HTTPError as exc:
            raise errors.from_exception(exc) from exc


def load_json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise errors.malformed("event data is not JSON") from None
