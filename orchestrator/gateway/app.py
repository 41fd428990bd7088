"""The gateway's ASGI app (served by hypercorn on trio, see ``server``).

Routes: GET /v1/models, POST /v1/chat/completions (OpenAI), POST /v1/messages and
POST /v1/messages/count_tokens (Anthropic), GET /healthz. Every turn's response carries the
x-orchestrator-turn-id / -model / -policy headers; a streamed response sends them with its first
byte, after routing and after the model's first token (so an upstream failure before any output
still gets its own status code). A client that disconnects cancels its turn.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import trio

from actors.config.registry import TIERS
from actors.planner.tokens import estimate_input_tokens
from protocol import events as ev

from . import anthropic_api, openai_api
from .auth import authorized
from .canonical import GatewayRequest
from .errors import GatewayError, bad_request
from .turns import GatewayActor, GatewayTurn, next_event, next_event_nowait

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

MAX_BODY = 32 * 1024 * 1024
SESSION_HEADER = b"x-orchestrator-session"
MAX_SESSION_ID = 200
_JSON = (b"content-type", b"application/json")
_SSE = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))


class _Disconnected(Exception):
    pass


ERROR_SEND_S = 2.0      # an error response is sent even while the daemon stops, but never waits longer


class GatewayApp:
    def __init__(self, gateway: GatewayActor, keys: tuple[str, ...] = ()):
        self.gateway = gateway
        self.keys = tuple(k.encode() for k in keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        # /v1/models serves both SDKs: the anthropic one says who it is with its version header
        anthropic = path.startswith("/v1/messages") or (
            path.startswith("/v1/models") and _header(scope, b"anthropic-version") is not None)
        try:
            if not authorized(scope["headers"], self.keys):
                raise GatewayError(401, "missing or wrong API key: send Authorization: Bearer KEY or x-api-key: KEY",
                                   "invalid_api_key")
            await self._route(path, method, scope, receive, send)
        except GatewayError as err:
            await _send_json(send, err.status, err.anthropic_body() if anthropic else err.openai_body(),
                             _raw(err.headers))
        except _Disconnected:
            return
        except BaseExceptionGroup as group:   # from the turn's nursery: one of ours inside, or a real fault
            # At shutdown the daemon's cancellation may ride along with our error: answer the
            # client first (shielded, bounded), then let the cancellation go on.
            cancelled, rest = group.split(trio.Cancelled)
            inner = _only(rest, GatewayError) if rest is not None else None
            if inner is None:
                if rest is not None and _only(rest, _Disconnected) is not None and cancelled is None:
                    return
                raise
            with trio.CancelScope(shield=True), trio.move_on_after(ERROR_SEND_S):
                await _send_json(send, inner.status, inner.anthropic_body() if anthropic else inner.openai_body(),
                                 _raw(inner.headers))
            if cancelled is not None:
                raise cancelled from None

    async def _route(self, path: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        post = {"/v1/chat/completions": self._chat, "/v1/messages": self._messages,
                "/v1/messages/count_tokens": self._count_tokens}
        get = {"/v1/models": self._models, "/healthz": self._health}
        handler = post.get(path) if method == "POST" else get.get(path) if method in ("GET", "HEAD") else None
        if handler is None and method in ("GET", "HEAD") and path.startswith("/v1/models/"):
            handler = self._model     # the SDKs' models.retrieve(ID)
        if handler is None:
            if path in post or path in get:
                raise GatewayError(405, f"{method} is not allowed on {path}", "method_not_allowed")
            raise GatewayError(404, f"no such endpoint: {method} {path}", "not_found")
        await handler(scope, receive, send)

    # --- simple endpoints ------------------------------------------------------------------------

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, {"status": "ok", "turns_running": self.gateway.running()})

    def _model_entries(self) -> list[dict]:
        registry = self.gateway.registry()
        names = [*registry.models, *sorted(registry.alias_table()), *TIERS, "auto"]
        return [{"id": name, "object": "model", "created": 0, "owned_by": "orchestrator",
                 # the Anthropic SDK reads the same list: its fields too
                 "type": "model", "display_name": name, "created_at": "1970-01-01T00:00:00Z"}
                for name in dict.fromkeys(names)]

    async def _model(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = scope["path"].removeprefix("/v1/models/")
        for entry in self._model_entries():
            if entry["id"] == wanted:
                await _send_json(send, 200, entry)
                return
        self.gateway.resolve(wanted)      # the same 404 (and text) as a turn asking for it
        raise GatewayError(404, f"unknown model or alias {wanted!r}", "model_not_found")

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = self._model_entries()
        await _send_json(send, 200, {"object": "list", "data": data, "has_more": False,
                                     "first_id": data[0]["id"] if data else None,
                                     "last_id": data[-1]["id"] if data else None})

    async def _count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = anthropic_api.parse_request(await _read_json(receive), count_only=True)
        self.gateway.resolve(req.model)   # an unknown model is a 404 here too
        await _send_json(send, 200, {"input_tokens": estimate_input_tokens(req.system, req.tools, req.messages)})

    # --- turns -------------------------------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = openai_api.parse_request(await _read_json(receive))
        await self._turn(req, scope, receive, send, openai=True)

    async def _messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = anthropic_api.parse_request(await _read_json(receive))
        await self._turn(req, scope, receive, send, openai=False)

    async def _turn(self, req: GatewayRequest, scope: Scope, receive: Receive, send: Send, *, openai: bool) -> None:
        session = _header(scope, SESSION_HEADER)
        if session is not None and (len(session) > MAX_SESSION_ID or not session.isprintable()):
            raise bad_request(f"x-orchestrator-session: at most {MAX_SESSION_ID} printable characters")
        disconnected = trio.Event()
        # The watch ends before the response's last write: hypercorn follows every complete response
        # with an http.disconnect of its own, which must not read as the client going away (taking it
        # so cancelled hypercorn's post-response work on the connection — its keep-alive timer — and
        # made every answered request leave by the disconnect path).
        watching = trio.CancelScope()

        async def watch_disconnect() -> None:
            # The only thing a client sends after its request is a disconnect: it cancels the turn.
            with watching:
                while (await receive())["type"] != "http.disconnect":
                    pass
                disconnected.set()
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_disconnect)
            async with self.gateway.open_turn(req, session) as turn:
                if req.stream:
                    await _stream(turn, req, send, openai, watching)
                else:
                    while await next_event(turn) is not None:
                        pass
                    result = turn.result()
                    body = openai_api.response(result) if openai else anthropic_api.response(result)
                    watching.cancel()
                    await _send_json(send, 200, body, turn.raw_headers)
            if not watching.cancel_called:   # failed before any byte: stop watching (cancel() costs a repr)
                watching.cancel()
        if disconnected.is_set():
            raise _Disconnected


async def _stream(turn: GatewayTurn, req: GatewayRequest, send: Send, openai: bool,
                  watching: trio.CancelScope) -> None:
    encoder: openai_api.ChunkStream | anthropic_api.EventStream = (
        openai_api.ChunkStream(turn.turn_id, turn.model, req.include_usage) if openai
        else anthropic_api.EventStream(turn.turn_id, turn.model))
    first = await next_event(turn)
    if turn.outcome is not None:
        turn.result()   # raises a failure before the first byte as its own status code
    await send({"type": "http.response.start", "status": 200, "headers": [*_SSE, *turn.raw_headers]})
    out = encoder.start()
    item = first
    while item is not None:
        if isinstance(item, ev.TextDelta):
            out += encoder.text(item.text)
        else:   # the outcome
            try:
                out += encoder.finish(turn.result())
            except GatewayError as err:   # after the first byte: the API's in-stream error event
                out += encoder.error(err)
            watching.cancel()
            await send({"type": "http.response.body", "body": out, "more_body": False})
            return
        # Deltas that are already waiting go out in one write (a fast stream costs fewer syscalls).
        item = next_event_nowait(turn)
        if item is None:
            await send({"type": "http.response.body", "body": out, "more_body": True})
            out = b""
            item = await next_event(turn)
    watching.cancel()
    await send({"type": "http.response.body", "body": out, "more_body": False})


async def _read_json(receive: Receive) -> Any:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise GatewayError(413, f"request body over {MAX_BODY // (1024 * 1024)} MiB", "request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise bad_request("the request body is not valid JSON") from None


async def _send_json(send: Send, status: int, body: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON, (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data, "more_body": False})


def _raw(headers: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in headers]


E = TypeVar("E", bound=Exception)


def _only(group: BaseExceptionGroup, kind: type[E]) -> E | None:
    """The one exception of ``kind`` a group holds when it holds nothing else, else None."""
    matched, rest = group.split(kind)
    if rest is not None or matched is None:
        return None
    leaves = list(_leaves(matched))
    return leaves[0] if len(leaves) == 1 and isinstance(leaves[0], kind) else None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1").strip() or None
    return None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
