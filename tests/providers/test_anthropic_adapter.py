"""The Anthropic adapter against a strict fake Messages API over real HTTP."""
from __future__ import annotations

import json
from contextlib import asynccontextmanager

import pytest

from actors.providers.anthropic import STRUCTURED_TOOL, AnthropicAdapter
from actors.providers.base import LLMRequest
from protocol.canonical import (
    ImageBlock, Message, Role, StopReason, TextBlock, ThinkingBlock, ToolDefinition, ToolResultBlock, ToolUseBlock,
)
from tests.fakes import Answer, Tokens, ToolCall, drain, open_fake_anthropic

WEATHER = ToolDefinition("get_weather", "Weather for a city",
                         {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def user(*blocks) -> Message:
    return Message(Role.USER, tuple(TextBlock(b) if isinstance(b, str) else b for b in blocks))


def assistant(*blocks) -> Message:
    return Message(Role.ASSISTANT, tuple(TextBlock(b) if isinstance(b, str) else b for b in blocks))


def request(*messages: Message, **kw) -> LLMRequest:
    return LLMRequest(model="claude-test", messages=messages or (user("hi"),), **kw)


@asynccontextmanager
async def fake_and_adapter(**adapter_kw):
    async with open_fake_anthropic() as srv:
        adapter = AnthropicAdapter(api_key="test-key", base_url=srv.base_url, **adapter_kw)
        try:
            yield srv, adapter
        finally:
            await adapter.aclose()
            assert srv.violations == []


async def test_streams_text_with_system_prompt_and_auth_headers():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text=("Hel", "lo", " there")))
        out = await drain(adapter.stream(request(system="Be brief.", max_tokens=321, temperature=0.2)))
    assert out.text_chunks == ["Hel", "lo", " there"]
    done = out.completed
    assert done.message.text == "Hello there"
    assert done.message.role is Role.ASSISTANT
    assert done.message.stop_reason is StopReason.END_TURN
    sent = srv.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "test-key"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json == {
        "model": "claude-test", "max_tokens": 321, "system": "Be brief.", "temperature": 0.2, "stream": True,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


async def test_usage_reports_cache_reads_and_writes_separately_from_input():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(usage=Tokens(input=120, output=33, cache_read=900, cache_write=40)))
        usage = (await drain(adapter.stream(request()))).completed.usage
    assert (usage.input_tokens, usage.output_tokens) == (120, 33)
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (900, 40, 0)
    assert usage.cost_usd is None  # no pricer given: unknown, not zero


async def test_multi_turn_history_with_images_is_sent_as_alternating_turns():
    history = (
        user("What is in these?", ImageBlock("image/png", data="aGVsbG8="), ImageBlock(url="https://example.test/cat.jpg")),
        assistant("A cat and a dog."),
        user("Which is bigger?"),
    )
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text="The dog."))
        out = await drain(adapter.stream(request(*history)))
    assert out.completed.message.text == "The dog."
    messages = srv.requests[0].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"][1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGVsbG8="}}
    assert messages[0]["content"][2] == {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}}


async def test_images_become_a_note_for_models_without_vision():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer())
        await drain(adapter.stream(request(user("look", ImageBlock(data="aGk=")), supports_images=False)))
    content = srv.requests[0].json["messages"][0]["content"]
    assert [b["type"] for b in content] == ["text", "text"]


async def test_several_tool_calls_then_tool_results_round_trip_through_the_strict_fake():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(
            Answer(text="Checking both.", tool_calls=(
                ToolCall("get_weather", {"city": "Paris"}, fragments=4),
                ToolCall("get_weather", {"city": "Oslo, Norway"}, fragments=2),
            )),
            Answer(text="Paris is sunny; Oslo failed."),
        )
        first = await drain(adapter.stream(request(user("Weather in Paris and Oslo?"), tools=(WEATHER,))))
        calls = first.tool_uses
        assert [c.input for c in calls] == [{"city": "Paris"}, {"city": "Oslo, Norway"}]
        assert first.completed.message.stop_reason is StopReason.TOOL_USE
        assert first.completed.message.tool_uses() == tuple(calls)
        results = Message(Role.TOOL, (
            ToolResultBlock(calls[0].id, "sunny, 24C"),
            ToolResultBlock(calls[1].id, "service down", is_error=True),
        ))
        second = await drain(adapter.stream(request(
            user("Weather in Paris and Oslo?"), first.completed.message, results, tools=(WEATHER,))))
    assert second.completed.message.text == "Paris is sunny; Oslo failed."
    body = srv.requests[1].json
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                              "input_schema": WEATHER.input_schema}]
    assert body["messages"][1]["content"][1:] == [
        {"type": "tool_use", "id": calls[0].id, "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": calls[1].id, "name": "get_weather", "input": {"city": "Oslo, Norway"}},
    ]
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": calls[0].id, "content": "sunny, 24C"},
        {"type": "tool_result", "tool_use_id": calls[1].id, "content": "service down", "is_error": True},
    ]}


async def test_tool_results_and_a_following_user_message_merge_into_one_turn_results_first():
    call = ToolUseBlock("toolu_1", "get_weather", {"city": "Rome"})
    history = (
        user("Weather?"), user("In Rome."),                       # consecutive user turns
        assistant(call),
        user("Also, be quick."), Message(Role.TOOL, (ToolResultBlock("toolu_1", "warm"),)),
    )
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text="Warm."))
        await drain(adapter.stream(request(*history, tools=(WEATHER,))))
    messages = srv.requests[0].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["type"] for b in messages[0]["content"]] == ["text", "text"]
    assert [b["type"] for b in messages[2]["content"]] == ["tool_result", "text"]


async def test_thinking_blocks_are_dropped_for_models_without_thinking():
    history = (user("Q"), assistant(ThinkingBlock("hmm", signature="sig"), "A"), user("Q2"))
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(), Answer())
        await drain(adapter.stream(request(*history, supports_thinking=False)))
        await drain(adapter.stream(request(*history, supports_thinking=True)))
    assert srv.requests[0].json["messages"][1]["content"] == [{"type": "text", "text": "A"}]
    replayed = srv.requests[1].json["messages"][1]["content"][0]
    assert replayed == {"type": "thinking", "thinking": "hmm", "signature": "sig"}


async def test_streamed_thinking_arrives_as_thinking_chunks_with_its_signature():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(thinking=("Let me ", "think."), signature="sig-123", text="42"))
        out = await drain(adapter.stream(request(supports_thinking=True)))
    assert out.thinking_chunks == ["Let me ", "think."]
    assert out.completed.message.content == (ThinkingBlock("Let me think.", "sig-123"), TextBlock("42"))


async def test_structured_output_is_emulated_with_a_forced_tool_and_surfaces_as_text():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text=(), tool_calls=(ToolCall(STRUCTURED_TOOL, {"answer": 42}, fragments=3),)))
        out = await drain(adapter.stream(request(output_schema=schema)))
    body = srv.requests[0].json
    assert body["tool_choice"] == {"type": "tool", "name": STRUCTURED_TOOL}
    assert body["tools"][-1]["input_schema"] == schema
    assert len(out.text_chunks) == 3 and out.tool_uses == []
    assert json.loads(out.completed.message.text) == {"answer": 42}
    assert out.completed.message.stop_reason is StopReason.END_TURN


async def test_structured_output_with_other_tools_and_a_non_object_schema():
    schema = {"type": "array", "items": {"type": "string"}}
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text=(), tool_calls=(ToolCall(STRUCTURED_TOOL, {"value": ["a", "b"]}),)))
        out = await drain(adapter.stream(request(output_schema=schema, tools=(WEATHER,))))
    body = srv.requests[0].json
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"][-1]["input_schema"]["properties"]["value"] == schema
    assert json.loads(out.completed.message.text) == ["a", "b"]


@pytest.mark.parametrize("wire, canonical", [
    ("end_turn", StopReason.END_TURN), ("max_tokens", StopReason.MAX_TOKENS),
    ("stop_sequence", StopReason.STOP_SEQUENCE), ("refusal", StopReason.REFUSAL),
    ("pause_turn", StopReason.END_TURN),
])
async def test_stop_reasons_map_to_canonical(wire, canonical):
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(stop_reason=wire))
        out = await drain(adapter.stream(request()))
    assert out.completed.message.stop_reason is canonical


async def test_non_streaming_models_get_one_json_response_replayed_as_chunks():
    async with fake_and_adapter(streaming=False) as (srv, adapter):
        srv.script(Answer(text=("Hel", "lo"), tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),),
                          usage=Tokens(input=7, output=3, cache_read=2)))
        out = await drain(adapter.stream(request(tools=(WEATHER,))))
    assert "stream" not in srv.requests[0].json
    assert out.text_chunks == ["Hello"]
    assert [c.input for c in out.tool_uses] == [{"city": "Oslo"}]
    assert out.completed.usage.input_tokens == 7 and out.completed.usage.cache_read_tokens == 2


async def test_a_pricer_fills_in_the_cost():
    from protocol.canonical import Usage
    import attrs

    def pricer(usage: Usage) -> Usage:
        return attrs.evolve(usage, cost_usd="0.5")

    async with fake_and_adapter(pricer=pricer) as (srv, adapter):
        srv.script(Answer())
        out = await drain(adapter.stream(request()))
    assert out.completed.usage.cost_usd == "0.5"


async def test_a_tool_call_cut_off_by_max_tokens_is_dropped_and_the_stop_reason_says_why():
    cut = ToolCall("get_weather", raw_arguments='{"city": "Par')
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text="Let me check.", tool_calls=(cut,), stop_reason="max_tokens"))
        out = await drain(adapter.stream(request(tools=(WEATHER,))))
    assert out.tool_uses == []
    assert out.completed.message.content == (TextBlock("Let me check."),)
    assert out.completed.message.stop_reason is StopReason.MAX_TOKENS
