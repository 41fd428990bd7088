"""The fakes are as strict as the real APIs, so adapter tests against them mean something."""
from __future__ import annotations

import httpx
import pytest

from tests.fakes import Answer, Fail, open_fake_anthropic, open_fake_openai

ANTHROPIC_HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
OK_ANTHROPIC = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
TOOL_USE = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}


def result(tool_use_id: str) -> dict:
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": "ok"}


@pytest.mark.parametrize("change, complaint", [
    ({"max_tokens": None}, "max_tokens"),
    ({"model": None}, "model"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "first message"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "alternate"),
    ({"messages": [{"role": "system", "content": "a"}]}, "role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": [result("t1")]}]}, "corresponding `tool_use`"),
    ({"messages": [{"role": "user", "content": "a"}, TOOL_USE, {"role": "user", "content": "no results"}]},
     "without `tool_result`"),
    ({"messages": [{"role": "user", "content": "a"}, TOOL_USE,
                   {"role": "user", "content": [{"type": "text", "text": "x"}, result("t1")]}]}, "come first"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "  "}]}]}, "non-whitespace"),
    ({"tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]}, "tools.0.name"),
    ({"tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
    ({"stream_options": {"include_usage": True}}, "Extra inputs"),
])
async def test_anthropic_fake_rejects_what_the_real_api_rejects(change, complaint):
    body = {k: v for k, v in {**OK_ANTHROPIC, **change}.items() if v is not None}
    async with open_fake_anthropic() as srv, httpx.AsyncClient() as http:
        srv.script(Answer())
        resp = await http.post(srv.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert resp.status_code == 400
    error = resp.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert complaint in error["error"]["message"]
    assert srv.violations and srv.pending == 1  # the scripted reply was not consumed


async def test_anthropic_fake_checks_key_and_version_headers():
    async with open_fake_anthropic() as srv, httpx.AsyncClient() as http:
        no_key = await http.post(srv.base_url + "/v1/messages", json=OK_ANTHROPIC, headers={"anthropic-version": "x"})
        no_version = await http.post(srv.base_url + "/v1/messages", json=OK_ANTHROPIC,
                                     headers={"x-api-key": "test-key"})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]


async def test_anthropic_fake_answers_a_valid_tool_round_trip_and_records_it():
    body = {**OK_ANTHROPIC, "messages": [
        {"role": "user", "content": "a"}, TOOL_USE,
        {"role": "user", "content": [result("t1"), {"type": "text", "text": "go"}]}]}
    async with open_fake_anthropic() as srv, httpx.AsyncClient() as http:
        srv.script(Answer(text="done"))
        resp = await http.post(srv.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert resp.status_code == 200 and resp.json()["content"] == [{"type": "text", "text": "done"}]
    assert srv.violations == [] and srv.requests[0].json == body


OK_OPENAI = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
CALLS = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


@pytest.mark.parametrize("change, complaint", [
    ({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "tool_call_id": "c1", "content": "x"}]},
     "must be a response to a preceding message with 'tool_calls'"),
    ({"messages": [{"role": "user", "content": "a"}, CALLS, {"role": "tool", "tool_call_id": "c1", "content": "x"},
                   {"role": "user", "content": "b"}]}, "did not have response messages: c2"),
    ({"messages": [{"role": "user", "content": "a"}, CALLS, {"role": "tool", "tool_call_id": "zz", "content": "x"}]},
     "preceding message"),
    ({"stream_options": {"include_usage": True}}, "only allowed when 'stream' is enabled"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "json_schema.name"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///x"}}]}]},
     "image_url"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"tools": [{"name": "f"}]}, "tools[0]"),
    ({"system": "top-level system is Anthropic's"}, "Unrecognized request argument"),
])
async def test_openai_fake_rejects_what_the_real_api_rejects(change, complaint):
    body = {**OK_OPENAI, **change}
    async with open_fake_openai() as srv, httpx.AsyncClient() as http:
        resp = await http.post(srv.base_url + "/chat/completions", json=body,
                               headers={"authorization": "Bearer test-key"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and complaint in error["message"]


async def test_openai_fake_checks_the_bearer_key_and_serves_errors_in_openai_shape():
    async with open_fake_openai() as srv, httpx.AsyncClient() as http:
        bad = await http.post(srv.base_url + "/chat/completions", json=OK_OPENAI, headers={"authorization": "Bearer x"})
        srv.script(Fail(429, "requests", "slow down", code="rate_limit_exceeded", retry_after="3"))
        limited = await http.post(srv.base_url + "/chat/completions", json=OK_OPENAI,
                                  headers={"authorization": "Bearer test-key"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json() == {"error": {"message": "slow down", "type": "requests", "param": None,
                                        "code": "rate_limit_exceeded"}}


async def test_openai_fake_streams_chunks_usage_and_done():
    body = {**OK_OPENAI, "stream": True, "stream_options": {"include_usage": True}}
    async with open_fake_openai() as srv, httpx.AsyncClient() as http:
        srv.script(Answer(text=("a", "b")))
        resp = await http.post(srv.base_url + "/chat/completions", json=body,
                               headers={"authorization": "Bearer test-key"})
    lines = [line for line in resp.text.splitlines() if line]
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]" and '"usage"' in lines[-2] and '"choices": []' in lines[-2]
