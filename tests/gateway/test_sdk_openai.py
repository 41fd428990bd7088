"""The official openai SDK against the gateway, with the fake upstreams behind it."""
from __future__ import annotations

import json

import openai
import pytest

from tests.fakes import Answer, Fail, Tokens, ToolCall

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "weather in a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_a_chat_completion_is_answered_by_the_routed_model_with_the_orchestrator_headers(gateway):
    gateway.oai.script(Answer(text=("Hello", " there"), usage=Tokens(input=12, output=3)))
    client = gateway.openai()
    raw = await gateway.call(lambda: client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "system", "content": "Be brief."}, *user("hi")]))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "local:llama"
    assert completion.usage.prompt_tokens == 12 and completion.usage.completion_tokens == 3
    assert raw.headers["x-orchestrator-model"] == "local:llama"
    assert raw.headers["x-orchestrator-policy"] == "global_default"
    assert raw.headers["x-orchestrator-turn-id"].startswith("t_")
    upstream = gateway.oai.requests[-1].json
    assert upstream["messages"][0] == {"role": "system", "content": "Be brief."}
    assert upstream["messages"][-1] == {"role": "user", "content": "hi"}


async def test_a_streamed_completion_carries_the_headers_and_the_usage_when_asked(gateway):
    gateway.oai.script(Answer(text=("a", "b", "c"), usage=Tokens(input=7, output=3)))
    client = gateway.openai()

    def stream():
        with client.chat.completions.with_streaming_response.create(
                model="llama", messages=user("abc"), stream=True, stream_options={"include_usage": True}) as response:
            return dict(response.headers), list(response.parse())

    headers, chunks = await gateway.call(stream)
    assert headers["x-orchestrator-model"] == "local:llama"
    assert headers["x-orchestrator-policy"] == "per_message_override"
    assert headers["x-orchestrator-turn-id"].startswith("t_")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "abc"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert {c.model for c in chunks} == {"local:llama"}


async def test_a_tool_call_round_trip_returns_the_call_and_takes_the_result_back(gateway):
    gateway.oai.script(Answer(text=(), tool_calls=(ToolCall("get_weather", {"city": "Oslo"}, id="call_1"),)),
                       Answer(text=("It is sunny in Oslo.",)))
    client = gateway.openai()
    messages: list[dict] = user("weather in Oslo?")
    first = await gateway.call(lambda: client.chat.completions.create(model="llama", messages=messages,
                                                                      tools=[WEATHER]))
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id == "call_1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert len(gateway.oai.requests) == 1   # the daemon ran no tool: the call came back to us
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    second = await gateway.call(lambda: client.chat.completions.create(model="llama", messages=messages,
                                                                       tools=[WEATHER]))
    assert second.choices[0].message.content == "It is sunny in Oslo."
    upstream = gateway.oai.requests[-1].json["messages"]
    assert upstream[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert upstream[-2]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_a_streamed_tool_call_arrives_as_tool_call_deltas(gateway):
    gateway.oai.script(Answer(text=("Checking",), tool_calls=(ToolCall("get_weather", {"city": "Rome"}, id="c9"),)))
    client = gateway.openai()
    chunks = await gateway.call(lambda: list(client.chat.completions.create(
        model="llama", messages=user("Rome?"), tools=[WEATHER], stream=True)))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "c9" and calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Rome"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_an_openai_client_is_served_by_an_anthropic_model_tool_calls_included(gateway):
    gateway.anth.script(Answer(text=("Let me look.",), tool_calls=(ToolCall("get_weather", {"city": "Paris"},
                                                                            id="toolu_1"),)),
                        Answer(text=("Rainy.",)))
    client = gateway.openai()
    messages: list[dict] = [{"role": "system", "content": "You are terse."}, *user("Paris weather?")]
    first = await gateway.call(lambda: client.chat.completions.create(model="haiku", messages=messages,
                                                                      tools=[WEATHER]))
    assert first.model == "anthropic:claude-haiku-4-5"
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content == "Let me look."
    call = first.choices[0].message.tool_calls[0]
    assert call.id == "toolu_1" and json.loads(call.function.arguments) == {"city": "Paris"}
    upstream = gateway.anth.requests[-1].json
    assert upstream["system"] == "You are terse."
    assert upstream["tools"][0]["name"] == "get_weather"
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"}]
    second = await gateway.call(lambda: client.chat.completions.create(model="haiku", messages=messages,
                                                                       tools=[WEATHER]))
    assert second.choices[0].message.content == "Rainy."
    last = gateway.anth.requests[-1].json["messages"][-1]
    assert last["role"] == "user" and last["content"][0]["type"] == "tool_result"
    assert last["content"][0]["tool_use_id"] == "toolu_1"
    assert gateway.anth.violations == []


async def test_response_format_json_schema_reaches_the_upstream(gateway):
    gateway.oai.script(Answer(text=('{"a": 1}',)))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    client = gateway.openai()
    out = await gateway.call(lambda: client.chat.completions.create(
        model="llama", messages=user("json please"),
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
    assert json.loads(out.choices[0].message.content) == {"a": 1}
    assert gateway.oai.requests[-1].json["response_format"]["type"] == "json_schema"


async def test_an_unknown_model_is_a_not_found_error(gateway):
    client = gateway.openai()
    with pytest.raises(openai.NotFoundError) as caught:
        await gateway.call(lambda: client.chat.completions.create(model="nope", messages=user("x")))
    assert caught.value.status_code == 404 and "nope" in caught.value.message
    assert gateway.oai.requests == []


async def test_a_malformed_request_is_a_bad_request_error(gateway):
    client = gateway.openai()
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.call(lambda: client.chat.completions.create(model="auto", messages=[]))
    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "invalid_request_error"


async def test_an_upstream_rate_limit_is_a_rate_limit_error(gateway):
    gateway.oai.script(Fail(429, "rate_limit_error", "slow down", retry_after="1"))
    client = gateway.openai()
    with pytest.raises(openai.RateLimitError) as caught:
        await gateway.call(lambda: client.chat.completions.create(model="llama", messages=user("x")))
    assert caught.value.status_code == 429
    assert caught.value.response.headers["x-orchestrator-model"] == "local:llama"


async def test_an_upstream_failure_before_the_first_byte_of_a_stream_is_a_502(gateway):
    gateway.oai.script(Fail(500, "server_error", "boom"))
    client = gateway.openai()
    with pytest.raises(openai.InternalServerError) as caught:
        await gateway.call(lambda: client.chat.completions.create(model="llama", messages=user("x"), stream=True))
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-orchestrator-turn-id"].startswith("t_")


async def test_no_model_available_is_a_503_with_the_hard_failure_text(gateway):
    # opus's provider has no key, and neither has the global default: nothing can serve the turn.
    gateway.daemon.paths.routing_file.write_text("schema_version: 1\nglobal_default: broken:claude-opus\n")
    client = gateway.openai()
    with pytest.raises(openai.InternalServerError) as caught:
        await gateway.call(lambda: client.chat.completions.create(model="opus", messages=user("x")))
    assert caught.value.status_code == 503
    assert "No model available" in caught.value.message
