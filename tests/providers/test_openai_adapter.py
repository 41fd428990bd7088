"""The OpenAI Chat Completions adapter against a strict fake over real HTTP."""
from __future__ import annotations

from contextlib import asynccontextmanager

import pytest

from actors.providers.base import LLMRequest
from actors.providers.openai import OpenAIAdapter
from protocol.canonical import (
    ImageBlock, Message, Role, StopReason, TextBlock, ThinkingBlock, ToolDefinition, ToolResultBlock,
)
from tests.fakes import Answer, Tokens, ToolCall, drain, open_fake_openai

LOOKUP = ToolDefinition("lookup", "Look a word up", {"type": "object", "properties": {"word": {"type": "string"}}})


def user(*blocks) -> Message:
    return Message(Role.USER, tuple(TextBlock(b) if isinstance(b, str) else b for b in blocks))


def request(*messages: Message, **kw) -> LLMRequest:
    return LLMRequest(model="gpt-test", messages=messages or (user("hi"),), **kw)


@asynccontextmanager
async def fake_and_adapter(*, api_key: str | None = "test-key", **adapter_kw):
    async with open_fake_openai(api_key=api_key) as srv:
        adapter = OpenAIAdapter(api_key=api_key, base_url=srv.base_url, **adapter_kw)
        try:
            yield srv, adapter
        finally:
            await adapter.aclose()
            assert srv.violations == []


async def test_streams_text_with_system_message_bearer_auth_and_usage_requested():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text=("Bon", "jour")))
        out = await drain(adapter.stream(request(system="Speak French.", max_tokens=99)))
    assert out.text_chunks == ["Bon", "jour"]
    assert out.completed.message.text == "Bonjour"
    assert out.completed.message.stop_reason is StopReason.END_TURN
    sent = srv.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.json == {
        "model": "gpt-test", "max_completion_tokens": 99, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "Speak French."}, {"role": "user", "content": "hi"}],
    }


async def test_usage_input_excludes_cached_tokens_and_reasoning_is_a_breakdown_of_output():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(usage=Tokens(input=300, cache_read=1200, output=80, reasoning=50)))
        usage = (await drain(adapter.stream(request()))).completed.usage
    # The fake reports prompt_tokens=1500 with cached_tokens=1200, as OpenAI does.
    assert (usage.input_tokens, usage.cache_read_tokens) == (300, 1200)
    assert (usage.output_tokens, usage.reasoning_tokens) == (80, 50)


async def test_images_are_sent_as_image_url_parts_with_data_urls_for_inline_images():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text="Two pictures."))
        await drain(adapter.stream(request(user(
            "Describe", ImageBlock("image/jpeg", data="aGVsbG8="), ImageBlock(url="https://example.test/a.png")))))
    assert srv.requests[0].json["messages"][0]["content"] == [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,aGVsbG8="}},
        {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
    ]


@pytest.mark.parametrize("interleave", [False, True])
async def test_several_tool_calls_are_assembled_from_fragments_by_index(interleave):
    calls = (ToolCall("lookup", {"word": "trio"}, fragments=4), ToolCall("lookup", {"word": "nursery"}, fragments=3),
             ToolCall("lookup", {"word": "cancel scope"}, fragments=5))
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text=(), tool_calls=calls, interleave_tool_calls=interleave))
        out = await drain(adapter.stream(request(tools=(LOOKUP,))))
    assert [(c.name, c.input) for c in out.tool_uses] == [("lookup", c.arguments) for c in calls]
    assert len({c.id for c in out.tool_uses}) == 3
    assert out.completed.message.stop_reason is StopReason.TOOL_USE
    assert srv.requests[0].json["tools"] == [{"type": "function", "function": {
        "name": "lookup", "description": "Look a word up", "parameters": LOOKUP.input_schema}}]


async def test_tool_results_round_trip_as_tool_messages_accepted_by_the_strict_fake():
    async with fake_and_adapter() as (srv, adapter):
        srv.script(
            Answer(text="Looking up.",
                   tool_calls=(ToolCall("lookup", {"word": "a"}), ToolCall("lookup", {"word": "b"}))),
            Answer(text="Done."),
        )
        first = await drain(adapter.stream(request(user("look up a and b"), tools=(LOOKUP,))))
        ids = [c.id for c in first.tool_uses]
        results = Message(Role.TOOL, (ToolResultBlock(ids[0], "A!"),
                                      ToolResultBlock(ids[1], "no such word", is_error=True)))
        second = await drain(adapter.stream(request(
            user("look up a and b"), first.completed.message, results, user("thanks"), tools=(LOOKUP,))))
    assert second.completed.message.text == "Done."
    messages = srv.requests[1].json["messages"]
    assert messages[1]["role"] == "assistant" and messages[1]["content"] == "Looking up."
    assert [c["id"] for c in messages[1]["tool_calls"]] == ids
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": ids[0], "content": "A!"},
        {"role": "tool", "tool_call_id": ids[1], "content": "[error] no such word"},
        {"role": "user", "content": "thanks"},
    ]


async def test_structured_output_uses_response_format_json_schema():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text=('{"n":', ' 3}')))
        out = await drain(adapter.stream(request(output_schema=schema)))
    assert srv.requests[0].json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": False}}
    assert out.completed.message.text == '{"n": 3}'


async def test_thinking_is_never_sent_back_and_streamed_reasoning_becomes_thinking_chunks():
    history = (user("Q"), Message(Role.ASSISTANT, (ThinkingBlock("private", "sig"), TextBlock("A"))), user("Q2"))
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(thinking=("step 1, ", "step 2"), text="B"))
        out = await drain(adapter.stream(request(*history, supports_thinking=True)))
    assert srv.requests[0].json["messages"][1] == {"role": "assistant", "content": "A"}
    assert out.thinking_chunks == ["step 1, ", "step 2"]
    assert out.completed.message.text == "B"


@pytest.mark.parametrize("wire, canonical", [
    ("stop", StopReason.END_TURN), ("length", StopReason.MAX_TOKENS),
    ("content_filter", StopReason.REFUSAL), ("tool_calls", StopReason.TOOL_USE),
])
async def test_finish_reasons_map_to_canonical(wire, canonical):
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(stop_reason=wire))
        out = await drain(adapter.stream(request()))
    assert out.completed.message.stop_reason is canonical


async def test_compatible_server_without_key_gets_no_authorization_header():
    async with fake_and_adapter(api_key=None, max_tokens_field="max_tokens") as (srv, adapter):
        srv.script(Answer(text="local"))
        out = await drain(adapter.stream(request()))
    assert out.completed.message.text == "local"
    assert "authorization" not in srv.requests[0].headers
    assert srv.requests[0].json["max_tokens"] == 4096


async def test_non_streaming_models_get_one_json_completion():
    async with fake_and_adapter(streaming=False) as (srv, adapter):
        srv.script(Answer(text=("a", "b"), tool_calls=(ToolCall("lookup", {"word": "x"}),),
                          usage=Tokens(input=4, cache_read=6, output=2)))
        out = await drain(adapter.stream(request(tools=(LOOKUP,))))
    body = srv.requests[0].json
    assert "stream" not in body and "stream_options" not in body
    assert out.text_chunks == ["ab"]
    assert [c.input for c in out.tool_uses] == [{"word": "x"}]
    assert (out.completed.usage.input_tokens, out.completed.usage.cache_read_tokens) == (4, 6)


async def test_a_tool_call_cut_off_by_length_is_dropped_and_the_stop_reason_says_why():
    cut = ToolCall("lookup", raw_arguments='{"word": "tr')
    async with fake_and_adapter() as (srv, adapter):
        srv.script(Answer(text=(), tool_calls=(ToolCall("lookup", {"word": "ok"}), cut), stop_reason="length"))
        out = await drain(adapter.stream(request(tools=(LOOKUP,))))
    assert [c.input for c in out.tool_uses] == [{"word": "ok"}]
    assert out.completed.message.stop_reason is StopReason.MAX_TOKENS


def test_a_reused_history_is_converted_once_per_message_and_sent_identically():
    """A session's history is re-sent every turn: only the new messages are converted (O(new
    messages)), and the body is exactly what a fresh conversion gives."""
    import gc

    from actors.providers import openai as oa
    from actors.providers.base import LLMRequest
    from protocol.canonical import Message, Role, TextBlock

    history = [Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, (TextBlock(f"m{i}"),)) for i in range(6)]
    first = oa.wire_messages(LLMRequest(model="m", messages=tuple(history)))
    calls = []
    original = oa._wire_message

    def counting(message, supports_images):
        calls.append(message)
        return original(message, supports_images)

    oa._wire_message = counting
    try:
        history.append(Message(Role.USER, (TextBlock("new"),)))
        again = oa.wire_messages(LLMRequest(model="m", messages=tuple(history)))
        fresh = [m for msg in history for m in original(msg, True)]
    finally:
        oa._wire_message = original
    assert calls == [history[-1]]  # only the new message was converted
    assert again == fresh and again[:6] == first
    ours = {id(m) for m in history}
    calls.clear()
    del history, again, first, fresh
    gc.collect()
    alive = {key for key, entry in oa._WIRE_CACHE._by_id.items() if entry[0]() is not None}
    assert alive == set(oa._WIRE_CACHE._by_id) and not ours & alive  # entries go with their messages
