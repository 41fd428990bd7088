"""The official anthropic SDK against the gateway, with the fake upstreams behind it."""
from __future__ import annotations

import anthropic
import pytest

from tests.fakes import Answer, Fail, Tokens, ToolCall

WEATHER = {"name": "get_weather", "description": "weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_a_message_is_answered_with_the_served_model_and_the_orchestrator_headers(gateway):
    gateway.anth.script(Answer(text=("Hi", " there"), usage=Tokens(input=20, output=2)))
    client = gateway.anthropic()
    raw = await gateway.call(lambda: client.messages.with_raw_response.create(
        model="haiku", max_tokens=64, system="Be kind.", messages=user("hello")))
    message = raw.parse()
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "Hi there"
    assert message.model == "anthropic:claude-haiku-4-5" and message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 20 and message.usage.output_tokens == 2
    assert raw.headers["x-orchestrator-model"] == "anthropic:claude-haiku-4-5"
    assert raw.headers["x-orchestrator-policy"] == "per_message_override"
    upstream = gateway.anth.requests[-1].json
    assert upstream["system"] == "Be kind." and upstream["max_tokens"] == 64
    assert upstream["model"] == "claude-haiku-4-5"


async def test_a_streamed_message_follows_the_anthropic_event_sequence(gateway):
    gateway.anth.script(Answer(text=("one ", "two"), usage=Tokens(input=5, output=2)))
    client = gateway.anthropic()

    def stream():
        with client.messages.with_streaming_response.create(
                model="haiku", max_tokens=64, messages=user("count"), stream=True) as response:
            return dict(response.headers), [e.type for e in response.parse()]

    headers, kinds = await gateway.call(stream)
    assert headers["x-orchestrator-turn-id"].startswith("t_")
    assert headers["x-orchestrator-model"] == "anthropic:claude-haiku-4-5"
    # The daemon relays the chunks of one network read as one delta: one or two deltas, never more.
    deltas = kinds.count("content_block_delta")
    assert 1 <= deltas <= 2, kinds
    assert kinds == ["message_start", "content_block_start", *["content_block_delta"] * deltas,
                     "content_block_stop", "message_delta", "message_stop"]

    def helper():
        gateway.anth.script(Answer(text=("one ", "two")))
        with client.messages.stream(model="haiku", max_tokens=64, messages=user("count")) as s:
            return "".join(s.text_stream), s.get_final_message()

    text, final = await gateway.call(helper)
    assert text == "one two" and final.model == "anthropic:claude-haiku-4-5" and final.stop_reason == "end_turn"


async def test_a_tool_use_round_trip_with_tool_result_blocks(gateway):
    gateway.anth.script(Answer(text=(), tool_calls=(ToolCall("get_weather", {"city": "Oslo"}, id="toolu_7"),)),
                        Answer(text=("Sunny.",)))
    client = gateway.anthropic()
    messages: list[dict] = user("Oslo?")
    first = await gateway.call(lambda: client.messages.create(model="haiku", max_tokens=64, messages=messages,
                                                              tools=[WEATHER]))
    assert first.stop_reason == "tool_use"
    use = [b for b in first.content if b.type == "tool_use"][0]
    assert use.id == "toolu_7" and use.name == "get_weather" and use.input == {"city": "Oslo"}
    assert len(gateway.anth.requests) == 1   # the daemon ran no tool
    messages += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": "sunny"}]}]
    second = await gateway.call(lambda: client.messages.create(model="haiku", max_tokens=64, messages=messages,
                                                               tools=[WEATHER]))
    assert second.content[0].text == "Sunny."
    sent = gateway.anth.requests[-1].json["messages"]
    assert sent[-1]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_7", "content": "sunny"}
    assert gateway.anth.violations == []


async def test_a_streamed_tool_use_arrives_as_an_input_json_delta(gateway):
    gateway.anth.script(Answer(text=("Looking",), tool_calls=(ToolCall("get_weather", {"city": "Rome"}, id="tu"),)))
    client = gateway.anthropic()

    def run():
        with client.messages.stream(model="haiku", max_tokens=64, messages=user("Rome?"), tools=[WEATHER]) as s:
            return s.get_final_message()

    final = await gateway.call(run)
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Rome"}


async def test_an_anthropic_client_is_served_by_an_openai_kind_model_tool_calls_included(gateway):
    gateway.oai.script(Answer(text=(), tool_calls=(ToolCall("get_weather", {"city": "Lima"}, id="call_5"),)),
                       Answer(text=("Warm.",)))
    client = gateway.anthropic()
    messages: list[dict] = user("Lima?")
    first = await gateway.call(lambda: client.messages.create(model="llama", max_tokens=64, system="terse",
                                                              messages=messages, tools=[WEATHER]))
    assert first.model == "local:llama" and first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and use.id == "call_5" and use.input == {"city": "Lima"}
    upstream = gateway.oai.requests[-1].json
    assert upstream["messages"][0] == {"role": "system", "content": "terse"}
    assert upstream["tools"][0]["function"]["name"] == "get_weather"
    messages += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_5", "content": "31C"},
                                              {"type": "text", "text": "and tomorrow?"}]}]
    second = await gateway.call(lambda: client.messages.create(model="llama", max_tokens=64, messages=messages,
                                                               tools=[WEATHER]))
    assert second.content[0].text == "Warm."
    sent = gateway.oai.requests[-1].json["messages"]
    assert sent[-2] == {"role": "tool", "tool_call_id": "call_5", "content": "31C"}
    assert sent[-1] == {"role": "user", "content": "and tomorrow?"}
    assert gateway.oai.violations == []


async def test_count_tokens_answers_an_estimate_without_calling_a_provider(gateway):
    client = gateway.anthropic()
    counted = await gateway.call(lambda: client.messages.count_tokens(
        model="haiku", system="sys", messages=user("how many tokens is this sentence?"), tools=[WEATHER]))
    assert counted.input_tokens > 0
    assert gateway.anth.requests == []


async def test_anthropic_errors_have_the_sdk_classes_and_status_codes(gateway):
    client = gateway.anthropic()
    with pytest.raises(anthropic.NotFoundError) as not_found:
        await gateway.call(lambda: client.messages.create(model="nope", max_tokens=8, messages=user("x")))
    assert not_found.value.status_code == 404
    assert not_found.value.body["type"] == "error" and not_found.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        await gateway.call(lambda: client.messages.create(model="haiku", max_tokens=8, messages=[]))
    assert bad.value.status_code == 400
    gateway.anth.script(Fail(429, "rate_limit_error", "slow down"))
    with pytest.raises(anthropic.RateLimitError) as limited:
        await gateway.call(lambda: client.messages.create(model="haiku", max_tokens=8, messages=user("x")))
    assert limited.value.status_code == 429
    assert limited.value.response.headers["x-orchestrator-model"] == "anthropic:claude-haiku-4-5"
    gateway.oai.script(Fail(503, "server_error", "down"))
    with pytest.raises(anthropic.InternalServerError) as upstream:
        await gateway.call(lambda: client.messages.create(model="llama", max_tokens=8, messages=user("x")))
    assert upstream.value.status_code == 502


async def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error_event(gateway):
    gateway.anth.script(Answer(text=("par", "tial", "more"), error_after=2,
                               error=Fail(529, "overloaded_error", "overloaded")))
    client = gateway.anthropic()

    def run():
        with client.messages.stream(model="haiku", max_tokens=64, messages=user("x")) as s:
            return "".join(s.text_stream)

    with pytest.raises(anthropic.APIStatusError) as caught:
        await gateway.call(run)
    assert "overloaded" in str(caught.value)
