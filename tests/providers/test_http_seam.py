"""The one HTTP seam (actors/providers/_http.py) over httpcore: what it sends, how it reads any
framing of the answer, which proxy it takes, and how transport failures are classified."""
from __future__ import annotations

import gzip
import json
import zlib

import httpcore
import pytest

from actors.providers import errors
from actors.providers._http import environment_proxy
from actors.providers.base import ErrorClass, LLMRequest, ProviderError
from actors.providers.openai import OpenAIAdapter
from protocol.canonical import Message, Role, TextBlock
from tests.fakes import drain
from tests.fakes.http import Plan, RecordedRequest, serve

REQUEST = LLMRequest(model="m", messages=(Message(Role.USER, (TextBlock("hi"),)),))
SSE = ("content-type", "text/event-stream")
TEXT = "naïve € — 雪 " * 3


def chunk(payload: dict) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def openai_stream(text: str) -> bytes:
    deltas = [chunk({"id": "c1", "choices": [{"index": 0, "delta": {"content": ch}}]}) for ch in text]
    done = chunk({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(deltas) + done + b"data: [DONE]\n\n"


def completion(text: str) -> bytes:
    return json.dumps({"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                "finish_reason": "stop"}]}).encode()


async def test_a_stream_cut_into_arbitrary_http_chunks_reaches_the_caller_whole_and_in_order():
    body = openai_stream(TEXT)
    # Pieces of 1..7 bytes: lines, events and multi-byte characters all split across reads.
    steps, at, size = [], 0, 1
    while at < len(body):
        steps.append(body[at:at + size])
        at, size = at + size, size % 7 + 1
    async with serve(lambda _: Plan(200, (SSE,), tuple(steps))) as srv:
        adapter = OpenAIAdapter(api_key=None, base_url=srv.origin)
        out = await drain(adapter.stream(REQUEST))
        await adapter.aclose()
    assert "".join(out.text_chunks) == TEXT
    assert out.completed.message.text == TEXT


async def test_the_request_is_compact_json_with_host_length_and_the_adapters_headers():
    async with serve(lambda _: Plan(200, (SSE,), (openai_stream("ok"),))) as srv:
        adapter = OpenAIAdapter(api_key="sk-test", base_url=srv.origin + "/v1")
        await drain(adapter.stream(REQUEST))
        await adapter.aclose()
    sent: RecordedRequest = srv.requests[0]
    assert sent.method == "POST" and sent.path == "/v1/chat/completions"
    assert sent.headers["host"] == srv.origin.removeprefix("http://")
    assert sent.headers["content-type"] == "application/json"
    assert int(sent.headers["content-length"]) == len(sent.body)
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["accept"] == "text/event-stream"
    assert b": " not in sent.body and sent.json["model"] == "m"


@pytest.mark.parametrize("coding, compress", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
])
async def test_a_compressed_answer_the_server_sent_unasked_is_still_read(coding, compress):
    json_answer = Plan(200, (("content-type", "application/json"), ("content-encoding", coding)),
                       (compress(completion("plain")),))
    stream_answer = Plan(200, (SSE, ("content-encoding", coding)), (compress(openai_stream("streamed")),))
    plans = iter([json_answer, stream_answer])
    async with serve(lambda _: next(plans)) as srv:
        adapter = OpenAIAdapter(api_key=None, base_url=srv.origin)
        first = await drain(adapter.stream(REQUEST))
        second = await drain(adapter.stream(REQUEST))
        await adapter.aclose()
    assert "accept-encoding" not in srv.requests[0].headers   # we never ask for it
    assert first.completed.message.text == "plain"
    assert second.completed.message.text == "streamed"


async def test_an_answer_in_a_coding_we_cannot_undo_is_a_malformed_server_answer():
    plan = Plan(200, (SSE, ("content-encoding", "br")), (b"\x1b\x00\x00",))
    async with serve(lambda _: plan) as srv:
        adapter = OpenAIAdapter(api_key=None, base_url=srv.origin)
        with pytest.raises(ProviderError) as info:
            await drain(adapter.stream(REQUEST))
        await adapter.aclose()
    assert info.value.error_class is ErrorClass.SERVER_ERROR and "content-encoding" in info.value.message


async def test_an_error_status_with_an_undecodable_body_is_classified_by_its_status():
    plan = Plan(503, (("content-type", "application/json"), ("content-encoding", "br")), (b"\x00garbage",))
    async with serve(lambda _: plan) as srv:
        adapter = OpenAIAdapter(api_key=None, base_url=srv.origin)
        with pytest.raises(ProviderError) as info:
            await drain(adapter.stream(REQUEST))
        await adapter.aclose()
    assert info.value.error_class is ErrorClass.SERVER_ERROR and info.value.status == 503


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_the_environment_names_the_proxy_per_scheme_and_no_proxy_exempts_hosts(no_proxy_env):
    assert environment_proxy("https://api.openai.com/v1") is None
    no_proxy_env.setenv("HTTPS_PROXY", "proxy.corp:3128")
    no_proxy_env.setenv("NO_PROXY", "localhost,.internal")
    assert environment_proxy("https://api.openai.com/v1") == "http://proxy.corp:3128"
    assert environment_proxy("http://api.openai.com/v1") is None   # only HTTPS_PROXY is set
    assert environment_proxy("https://llm.internal/v1") is None
    assert environment_proxy("http://localhost:8080/v1") is None
    no_proxy_env.setenv("ALL_PROXY", "http://all.corp:8080")
    assert environment_proxy("http://api.openai.com/v1") == "http://all.corp:8080"


async def test_a_request_goes_through_the_proxy_the_environment_names(no_proxy_env):
    async with serve(lambda _: Plan(200, (SSE,), (openai_stream("via proxy"),))) as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.origin)
        adapter = OpenAIAdapter(api_key=None, base_url="http://provider.example/v1")
        out = await drain(adapter.stream(REQUEST))
        await adapter.aclose()
    assert out.completed.message.text == "via proxy"
    # A forward proxy is asked for the absolute URL.
    assert proxy.requests[0].path == "http://provider.example/v1/chat/completions"


@pytest.mark.parametrize("exc, expected", [
    (httpcore.ConnectError("[Errno -2] Name or service not known"), ErrorClass.NETWORK),   # DNS
    (httpcore.ConnectError("[Errno 111] Connection refused"), ErrorClass.NETWORK),
    (httpcore.ReadError("reset"), ErrorClass.NETWORK),
    (httpcore.WriteError("broken pipe"), ErrorClass.NETWORK),
    (httpcore.RemoteProtocolError("peer closed connection"), ErrorClass.NETWORK),
    (httpcore.ProxyError("407"), ErrorClass.NETWORK),
    (httpcore.ConnectTimeout(""), ErrorClass.TIMEOUT),
    (httpcore.ReadTimeout(""), ErrorClass.TIMEOUT),
    (httpcore.PoolTimeout(""), ErrorClass.TIMEOUT),
    (httpcore.UnsupportedProtocol("ftp"), ErrorClass.BAD_REQUEST),
    (httpcore.LocalProtocolError("bad header"), ErrorClass.BAD_REQUEST),
])
def test_httpcore_exceptions_are_classified_like_their_httpx_wrappers(exc, expected):
    assert isinstance(exc, errors.TRANSPORT_ERRORS)
    assert errors.from_exception(exc).error_class is expected
    assert errors.from_exception(exc).message.startswith(type(exc).__name__)


async def test_an_unsupported_url_scheme_is_a_bad_request_not_a_crash():
    adapter = OpenAIAdapter(api_key=None, base_url="ftp://example.com/v1")
    with pytest.raises(ProviderError) as info:
        await drain(adapter.stream(REQUEST))
    await adapter.aclose()
    assert info.value.error_class is ErrorClass.BAD_REQUEST
