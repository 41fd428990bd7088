"""The seam's own keep-alive connections (actors/providers/_conn.py), against a raw server that
counts its connections and frames each answer the way the test needs."""
from __future__ import annotations

import json
import ssl
from collections.abc import Callable

import pytest
import trio
import trustme

from actors.providers._conn import head_block
from actors.providers._http import ProviderHTTP, encode_body, load_json
from actors.providers.base import ErrorClass, LLMRequest, ProviderError
from actors.providers.openai import OpenAIAdapter
from protocol.canonical import Message, Role, TextBlock
from tests.fakes import drain

REQUEST = LLMRequest(model="m", messages=(Message(Role.USER, (TextBlock("hi"),)),))


def completion(text: str) -> bytes:
    return json.dumps({"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                "finish_reason": "stop"}]}).encode()


def sse(text: str) -> bytes:
    events = [{"id": "c1", "choices": [{"index": 0, "delta": {"content": ch}}]} for ch in text]
    events.append({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(b"data: %b\n\n" % json.dumps(e).encode() for e in events) + b"data: [DONE]\n\n"


def with_length(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


def chunked(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    events = [event + b"\n\n" for event in body.split(b"\n\n") if event]
    return head + b"".join(b"%x\r\n%b\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


class RawServer:
    """Answers each request with ``answer(n)`` (n counts requests from 0); ``close_after`` closes
    the connection once that answer is written, without saying so in a header."""

    def __init__(self, answer: Callable[[int], bytes], close_after: bool = False):
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = trio.Event()
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(buf) < length:
                    buf += await stream.receive_some(65536)
                self.requests.append(head)
                buf = buf[length:]
                await stream.send_all(self.answer(len(self.requests) - 1))
                if self.close_after:
                    await stream.aclose()
                    self.closed.set()
                    return
        finally:
            await trio.aclose_forcefully(stream)


async def run_with(server: RawServer, body: Callable[[str], object]) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, server.handle, 0)
        server.port = listeners[0].socket.getsockname()[1]
        await body(f"http://127.0.0.1:{server.port}")  # type: ignore[misc]
        nursery.cancel_scope.cancel()


async def test_requests_in_a_row_reuse_one_keep_alive_connection():
    server = RawServer(lambda n: with_length(completion(f"answer {n}")) if n % 2 == 0 else chunked(sse(f"s{n}")))
    texts = []

    async def body(origin: str) -> None:
        adapter = OpenAIAdapter(api_key=None, base_url=origin)
        for _ in range(4):
            texts.append((await drain(adapter.stream(REQUEST))).completed.message.text)
        await adapter.aclose()

    await run_with(server, body)
    assert texts == ["answer 0", "s1", "answer 2", "s3"]
    assert server.connections == 1


async def test_a_connection_the_server_closed_while_idle_is_not_reused():
    server = RawServer(lambda n: with_length(completion(f"answer {n}")), close_after=True)
    texts = []

    async def body(origin: str) -> None:
        adapter = OpenAIAdapter(api_key=None, base_url=origin)
        texts.append((await drain(adapter.stream(REQUEST))).completed.message.text)
        await server.closed.wait()
        texts.append((await drain(adapter.stream(REQUEST))).completed.message.text)
        await adapter.aclose()

    await run_with(server, body)
    assert texts == ["answer 0", "answer 1"]   # no failed attempt on the dead connection
    assert server.connections == 2


async def test_an_answer_that_ends_when_the_server_closes_is_read_whole():
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + completion("until close")
    server = RawServer(lambda n: answer, close_after=True)
    texts = []

    async def body(origin: str) -> None:
        adapter = OpenAIAdapter(api_key=None, base_url=origin)
        texts.append((await drain(adapter.stream(REQUEST))).completed.message.text)
        texts.append((await drain(adapter.stream(REQUEST))).completed.message.text)
        await adapter.aclose()

    await run_with(server, body)
    assert texts == ["until close", "until close"]
    assert server.connections == 2


async def test_a_malformed_answer_is_a_network_failure_of_the_call():
    server = RawServer(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n{}")

    async def body(origin: str) -> None:
        adapter = OpenAIAdapter(api_key=None, base_url=origin)
        with pytest.raises(ProviderError) as info:
            await drain(adapter.stream(REQUEST))
        await adapter.aclose()
        assert info.value.error_class is ErrorClass.NETWORK
        assert info.value.message.startswith("RemoteProtocolError")

    await run_with(server, body)


async def test_an_api_key_that_would_split_the_request_is_refused_before_anything_is_sent():
    server = RawServer(lambda n: with_length(completion("never")))

    async def body(origin: str) -> None:
        adapter = OpenAIAdapter(api_key="sk-1\r\nx-injected: 1", base_url=origin)
        with pytest.raises(ProviderError) as info:
            await drain(adapter.stream(REQUEST))
        await adapter.aclose()
        assert info.value.error_class is ErrorClass.BAD_REQUEST

    await run_with(server, body)
    assert server.requests == []


def test_the_fixed_header_block_is_sent_as_given_with_surrounding_blanks_trimmed():
    assert head_block([("accept", " text/event-stream "), ("x-api-key", "k")]) == \
        b"accept: text/event-stream\r\nx-api-key: k\r\n"


def test_a_chunk_payload_only_the_standard_parser_accepts_reads_as_it_did():
    # A lone surrogate escape and a NaN: orjson refuses both, json reads them.
    assert load_json('{"t": "\\ud83d", "x": NaN}')["t"] == "\ud83d"
    with pytest.raises(ProviderError) as info:
        load_json("{not json")
    assert info.value.error_class is ErrorClass.SERVER_ERROR


def test_a_request_body_is_compact_utf8_and_keys_json_accepts_still_encode():
    assert encode_body({"a": "é €", "n": [1, 2.5]}) == '{"a":"é €","n":[1,2.5]}'.encode()
    assert encode_body({"m": {1: "x"}, "big": 2**70}) == b'{"m":{"1":"x"},"big":1180591620717411303424}'


# --- TLS: every real provider is reached over https -------------------------------------------------

async def run_tls(server: RawServer, body: Callable[[str, ssl.SSLContext], object]) -> None:
    """``server`` behind TLS with a certificate for 127.0.0.1 from a throwaway CA; ``body`` gets the
    origin and a client context that trusts that CA (and nothing else)."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def handle(stream: trio.SSLStream) -> None:
        try:
            await server.handle(stream)  # type: ignore[arg-type]
        except trio.BrokenResourceError:
            pass   # a client that refused our certificate hangs up mid-handshake

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_ssl_over_tcp, handle, 0, server_ctx)
        server.port = listeners[0].transport_listener.socket.getsockname()[1]
        await body(f"https://127.0.0.1:{server.port}", client_ctx)  # type: ignore[misc]
        nursery.cancel_scope.cancel()


async def test_https_answers_json_and_sse_over_one_verified_keep_alive_connection():
    server = RawServer(lambda n: with_length(completion(f"tls {n}")) if n % 2 == 0 else chunked(sse(f"t{n}")))
    texts = []

    async def body(origin: str, trusted: ssl.SSLContext) -> None:
        async with ProviderHTTP(ssl_context=trusted) as http:   # shared pools: their owner closes them
            adapter = OpenAIAdapter(api_key="sk-test", base_url=origin, http=http)
            for _ in range(3):
                texts.append((await drain(adapter.stream(REQUEST))).completed.message.text)
            await adapter.aclose()

    await run_tls(server, body)
    assert texts == ["tls 0", "t1", "tls 2"]
    assert server.connections == 1
    assert all(b"authorization: Bearer sk-test" in head for head in server.requests)


async def test_an_https_server_whose_certificate_is_not_trusted_is_a_network_failure_and_gets_no_request():
    server = RawServer(lambda n: with_length(completion("never")))

    async def body(origin: str, _trusted: ssl.SSLContext) -> None:
        async with ProviderHTTP(ssl_context=ssl.create_default_context()) as http:   # not our CA
            adapter = OpenAIAdapter(api_key="sk-secret", base_url=origin, http=http)
            with pytest.raises(ProviderError) as info:
                await drain(adapter.stream(REQUEST))
            await adapter.aclose()
        assert info.value.error_class is ErrorClass.NETWORK
        assert "CERTIFICATE_VERIFY_FAILED" in info.value.message

    await run_tls(server, body)
    assert server.requests == []   # the key never left the client
