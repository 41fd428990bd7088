"""The gateway app under an ASGI server's request lifecycle, driven the way hypercorn drives it.

Hypercorn follows every complete response with an ``http.disconnect`` on the request's receive
channel and then does its own post-response work on the connection (restarting the keep-alive
timer) inside the app's ``send``. These tests play that server: ``send`` records what was written
and, after the response's last write, queues the disconnect and passes a checkpoint.
"""
from __future__ import annotations

import json

import trio

from orchestrator.gateway.app import GatewayApp
from orchestrator.gateway.canonical import GatewayRequest
from protocol.canonical import Message, Role, TextBlock
from protocol.messages import TurnOutcome
from tests.fakes import Answer


class Server:
    """One HTTP request as hypercorn hands it to the app."""

    def __init__(self, path: str, body: dict):
        self.scope = {"type": "http", "method": "POST", "path": path,
                      "headers": [(b"content-type", b"application/json")]}
        self._in, self._out = trio.open_memory_channel[dict](10)
        self._in.send_nowait({"type": "http.request", "body": json.dumps(body).encode(), "more_body": False})
        self.sent: list[dict] = []
        self.post_response_work_cancelled = False

    async def receive(self) -> dict:
        return await self._out.receive()

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            await self._in.send({"type": "http.disconnect"})
            try:   # the server's own work on the connection after the response (keep-alive timer)
                await trio.lowlevel.checkpoint()
                await trio.lowlevel.checkpoint()
            except trio.Cancelled:
                self.post_response_work_cancelled = True
                raise

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def _serve(gateway, server: Server) -> None:
    app = GatewayApp(gateway.daemon.actors["gateway"])
    with trio.fail_after(10):
        await app(server.scope, server.receive, server.send)


async def test_the_disconnect_after_a_complete_answer_does_not_cancel_the_servers_own_work(gateway):
    gateway.oai.script(Answer(text=("one ", "two")), Answer(text=("three ", "four")))
    plain = Server("/v1/chat/completions", {"model": "llama", "messages": [{"role": "user", "content": "hi"}]})
    await _serve(gateway, plain)
    assert json.loads(plain.body)["choices"][0]["message"]["content"] == "one two"
    assert not plain.post_response_work_cancelled

    streamed = Server("/v1/messages", {"model": "llama", "max_tokens": 16, "stream": True,
                                       "messages": [{"role": "user", "content": "hi"}]})
    await _serve(gateway, streamed)
    assert b"three " in streamed.body and b"message_stop" in streamed.body
    assert not streamed.post_response_work_cancelled


async def _items(actor, stream: bool) -> list[str]:
    """What the request's task is handed for one turn, by kind, up to the outcome."""
    request = GatewayRequest("llama", (Message(Role.USER, (TextBlock("hi"),)),), stream=stream)
    items = []
    async with actor.open_turn(request) as turn:
        while turn.outcome is None:
            item = await turn.events.receive()
            items.append(type(item).__name__)
            if isinstance(item, TurnOutcome):
                turn.outcome = item
    assert turn.result().text == "ab"
    return items


async def test_a_non_streaming_request_is_handed_its_outcome_only_a_streamed_one_its_text_deltas_too(gateway):
    actor = gateway.daemon.actors["gateway"]
    gateway.oai.script(Answer(text=("a", "b")), Answer(text=("a", "b")))
    assert await _items(actor, stream=False) == ["TurnOutcome"]
    streamed = await _items(actor, stream=True)
    assert streamed[-1] == "TurnOutcome" and set(streamed[:-1]) == {"TextDelta"} and len(streamed) >= 2
