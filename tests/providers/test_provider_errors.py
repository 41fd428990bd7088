"""Every ErrorClass from a scripted failure, classified by status, error type/code or exception class."""
from __future__ import annotations

import email.utils
import socket
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from actors.providers import errors
from actors.providers.anthropic import AnthropicAdapter
from actors.providers.base import ErrorClass, LLMRequest, ProviderError
from actors.providers.openai import OpenAIAdapter
from protocol.canonical import Message, Role, TextBlock
from tests.fakes import Answer, Drop, Fail, Plan, drain, open_fake_anthropic, open_fake_openai

REQUEST = LLMRequest(model="m", messages=(Message(Role.USER, (TextBlock("hi"),)),))


@asynccontextmanager
async def vendor(name: str, **adapter_kw):
    opener, cls = (open_fake_anthropic, AnthropicAdapter) if name == "anthropic" else (open_fake_openai, OpenAIAdapter)
    async with opener() as srv:
        adapter = cls(api_key="test-key", base_url=srv.base_url, **adapter_kw)
        try:
            yield srv, adapter
        finally:
            await adapter.aclose()


async def failure(srv, adapter, *replies, request: LLMRequest = REQUEST) -> ProviderError:
    srv.script(*replies)
    with pytest.raises(ProviderError) as info:
        await drain(adapter.stream(request))
    return info.value


ANTHROPIC_CASES = [
    (Fail(401, "authentication_error"), ErrorClass.AUTH),
    (Fail(403, "permission_error"), ErrorClass.AUTH),
    (Fail(429, "rate_limit_error"), ErrorClass.RATE_LIMIT),
    (Fail(500, "api_error"), ErrorClass.SERVER_ERROR),
    (Fail(529, "overloaded_error"), ErrorClass.SERVER_ERROR),
    (Fail(502, "api_error"), ErrorClass.SERVER_ERROR),
    (Fail(504, "timeout_error"), ErrorClass.SERVER_ERROR),
    (Fail(413, "request_too_large"), ErrorClass.CONTEXT_LENGTH),
    (Fail(400, "invalid_request_error"), ErrorClass.BAD_REQUEST),
    (Fail(404, "not_found_error"), ErrorClass.BAD_REQUEST),
]
OPENAI_CASES = [
    (Fail(401, "invalid_request_error", code="invalid_api_key"), ErrorClass.AUTH),
    (Fail(429, "requests", code="rate_limit_exceeded"), ErrorClass.RATE_LIMIT),
    (Fail(429, "insufficient_quota", code="insufficient_quota"), ErrorClass.AUTH),
    (Fail(503, "server_error"), ErrorClass.SERVER_ERROR),
    (Fail(400, "invalid_request_error", code="context_length_exceeded"), ErrorClass.CONTEXT_LENGTH),
    (Fail(400, "invalid_request_error", code="invalid_value"), ErrorClass.BAD_REQUEST),
    (Fail(422, "invalid_request_error"), ErrorClass.BAD_REQUEST),
]


@pytest.mark.parametrize("name, fail, expected", [("anthropic", *c) for c in ANTHROPIC_CASES]
                         + [("openai", *c) for c in OPENAI_CASES])
async def test_http_errors_are_classified_by_status_and_error_type(name, fail, expected):
    async with vendor(name) as (srv, adapter):
        error = await failure(srv, adapter, fail)
    assert error.error_class is expected
    assert error.status == fail.status


@pytest.mark.parametrize("name", ["anthropic", "openai"])
async def test_retry_after_in_seconds_is_read_from_a_429(name):
    async with vendor(name) as (srv, adapter):
        error = await failure(srv, adapter, Fail(429, "rate_limit_error", retry_after="7"))
    assert error.error_class is ErrorClass.RATE_LIMIT and error.retry_after == 7.0
    assert error.transient


async def test_retry_after_as_an_http_date_becomes_seconds_from_now():
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert errors.parse_retry_after({"retry-after": header}, now=now) == pytest.approx(30, abs=1)
    assert errors.parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert errors.parse_retry_after({"retry-after": "soon"}) is None
    assert errors.parse_retry_after({}) is None


async def test_anthropic_invalid_request_near_the_context_window_is_context_length():
    huge = LLMRequest(model="m", messages=(Message(Role.USER, (TextBlock("word " * 4000),)),), max_tokens=100)
    async with vendor("anthropic", max_context_tokens=1000) as (srv, adapter):
        assert (await failure(srv, adapter, Fail(400, "invalid_request_error"), request=huge)).error_class \
            is ErrorClass.CONTEXT_LENGTH
        # The same error type on a small request is an ordinary bad request.
        small = LLMRequest(model="m", messages=REQUEST.messages, max_tokens=100)
        assert (await failure(srv, adapter, Fail(400, "invalid_request_error"), request=small)).error_class \
            is ErrorClass.BAD_REQUEST


@pytest.mark.parametrize("name, fail, expected", [
    ("anthropic", Fail(529, "overloaded_error"), ErrorClass.SERVER_ERROR),
    ("anthropic", Fail(429, "rate_limit_error"), ErrorClass.RATE_LIMIT),
    ("openai", Fail(500, "server_error"), ErrorClass.SERVER_ERROR),
])
async def test_an_error_event_inside_the_stream_is_classified_like_a_response(name, fail, expected):
    async with vendor(name) as (srv, adapter):
        error = await failure(srv, adapter, Answer(text=("Hel", "lo"), error_after=1, error=fail))
    assert error.error_class is expected
    assert error.partial_text == "Hel"


@pytest.mark.parametrize("name", ["anthropic", "openai"])
async def test_a_connection_cut_mid_stream_is_network_with_the_partial_text(name):
    async with vendor(name) as (srv, adapter):
        error = await failure(srv, adapter, Answer(text=("one ", "two ", "three"), cut_after=2))
    assert error.error_class is ErrorClass.NETWORK
    assert error.partial_text == "one two "


@pytest.mark.parametrize("name", ["anthropic", "openai"])
async def test_a_connection_closed_without_response_is_network(name):
    async with vendor(name) as (srv, adapter):
        assert (await failure(srv, adapter, Drop())).error_class is ErrorClass.NETWORK


async def test_connection_refused_is_network():
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = AnthropicAdapter(api_key="k", base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ProviderError) as info:
        await drain(adapter.stream(REQUEST))
    await adapter.aclose()
    assert info.value.error_class is ErrorClass.NETWORK


@pytest.mark.parametrize("name", ["anthropic", "openai"])
async def test_a_stalled_stream_times_out(name, autojump_clock):
    async with vendor(name, timeout_s=5.0) as (srv, adapter):
        start = trio.current_time()
        error = await failure(srv, adapter, Answer(text=("a", "b"), delay=60.0))
    assert error.error_class is ErrorClass.TIMEOUT
    assert 5.0 <= trio.current_time() - start < 60.0


async def test_a_2xx_body_that_is_not_json_is_a_server_error():
    async with vendor("openai", streaming=False) as (srv, adapter):
        # e.g. a captive portal or a misconfigured proxy answering in place of the API
        srv.render = lambda answer, body: Plan(200, (("content-type", "application/json"),), (b"<html>",))
        error = await failure(srv, adapter, Answer())
    assert error.error_class is ErrorClass.SERVER_ERROR


@pytest.mark.parametrize("exc, expected", [
    (httpx.ConnectError("dns: name or service not known"), ErrorClass.NETWORK),
    (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]"), ErrorClass.NETWORK),
    (httpx.ReadError("reset"), ErrorClass.NETWORK),
    (httpx.RemoteProtocolError("peer closed"), ErrorClass.NETWORK),
    (httpx.ConnectTimeout("slow"), ErrorClass.TIMEOUT),
    (httpx.ReadTimeout("slow"), ErrorClass.TIMEOUT),
    (httpx.PoolTimeout("busy"), ErrorClass.TIMEOUT),
    (httpx.UnsupportedProtocol("ftp://"), ErrorClass.BAD_REQUEST),
])
def test_httpx_exceptions_are_classified_by_class(exc, expected):
    assert errors.from_exception(exc).error_class is expected


@pytest.mark.parametrize("kwargs, expected", [
    ({"status": None, "error_type": "overloaded_error"}, ErrorClass.SERVER_ERROR),
    ({"status": None, "error_type": "authentication_error"}, ErrorClass.AUTH),
    ({"status": None, "error_type": "something_new"}, ErrorClass.SERVER_ERROR),
    ({"status": 418, "error_type": None}, ErrorClass.BAD_REQUEST),
    ({"status": 599}, ErrorClass.SERVER_ERROR),
    ({"status": 429, "code": "insufficient_quota"}, ErrorClass.AUTH),
])
def test_classification_rules(kwargs, expected):
    assert errors.classify(**kwargs) is expected


def test_the_message_text_never_decides_the_class():
    payload = {"error": {"type": "invalid_request_error", "message": "prompt is too long: 300000 tokens > 200000"}}
    assert errors.from_payload(payload, status=400).error_class is ErrorClass.BAD_REQUEST
