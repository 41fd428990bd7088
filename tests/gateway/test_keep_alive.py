"""Kept-alive HTTP connections: the gateway reaps a client connection that sits idle."""
from __future__ import annotations

import json

import trio

import orchestrator.gateway.server as server
from tests.fakes import Answer

from .conftest import start_gateway

REQUEST = json.dumps({"model": "llama", "messages": [{"role": "user", "content": "x"}]}).encode()


async def test_an_answered_connection_left_idle_is_closed_after_the_keep_alive_timeout(nursery, short_tmp, fakes,
                                                                                      monkeypatch):
    monkeypatch.setattr(server, "KEEP_ALIVE_S", 0.2)
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k-test")
    gw = await start_gateway(nursery, short_tmp, *fakes)
    gw.oai.script(Answer(text=("hi",)))
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                          b"content-length: %d\r\n\r\n%s" % (len(REQUEST), REQUEST))
    data = b""
    with trio.fail_after(10):
        while b'"usage"' not in data:
            data += await stream.receive_some()
        assert data.startswith(b"HTTP/1.1 200")
        while await stream.receive_some():   # answered; then nothing more until the server closes it
            pass
    await stream.aclose()
    await gw.aclose()
