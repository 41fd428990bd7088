"""The sans-IO translation between the HTTP APIs and canonical messages: unit and property tests.

The SDKs' own response models validate what the gateway renders."""
from __future__ import annotations

import json

import anthropic.types
import openai.types.chat
import pydantic
import pytest
from hypothesis import given, settings, strategies as st

from orchestrator.gateway import anthropic_api, openai_api
from orchestrator.gateway.canonical import TurnResult, final_message
from orchestrator.gateway.errors import GatewayError, turn_failure
from protocol.canonical import Message, Role, StopReason, TextBlock, ToolResultBlock, ToolUseBlock, Usage

EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
texts = st.text(max_size=40)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
ids = st.from_regex(r"[a-zA-Z0-9_]{1,12}", fullmatch=True)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | texts,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                           max_leaves=8)
inputs = st.dictionaries(names, json_values, max_size=4)
calls = st.lists(st.tuples(ids, names, inputs), max_size=3, unique_by=lambda c: c[0])


# A conversation: user texts, assistant turns with text and tool calls, each call answered.
@st.composite
def conversations(draw):
    turns = []
    for _ in range(draw(st.integers(1, 4))):
        turns.append(("user", draw(texts.filter(bool))))
        text, uses = draw(texts), draw(calls)
        turns.append(("assistant", text, uses))
        if uses:
            turns.append(("results", [(u[0], draw(texts)) for u in uses]))
    turns.append(("user", draw(texts.filter(bool))))
    return turns


def as_openai(conv) -> list[dict]:
    out: list[dict] = []
    for t in conv:
        if t[0] == "user":
            out.append({"role": "user", "content": t[1]})
        elif t[0] == "assistant":
            m: dict = {"role": "assistant", "content": t[1] or None}
            if t[2]:
                m["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                                   for i, n, a in t[2]]
            out.append(m)
        else:
            out += [{"role": "tool", "tool_call_id": i, "content": c} for i, c in t[1]]
    return out


def as_anthropic(conv) -> list[dict]:
    out: list[dict] = []
    for t in conv:
        if t[0] == "user":
            out.append({"role": "user", "content": t[1]})
        elif t[0] == "assistant":
            blocks = ([{"type": "text", "text": t[1]}] if t[1] else []) + [
                {"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in t[2]]
            out.append({"role": "assistant", "content": blocks or [{"type": "text", "text": ""}]})
        else:
            out.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": c}
                                                    for i, c in t[1]]})
    return out


def canonical_view(messages: tuple[Message, ...]) -> list:
    """What must survive translation: roles, texts, tool calls, tool results, in order."""
    view = []
    for m in messages:
        if m.role is Role.TOOL:
            view.append(("results", [(b.tool_use_id, b.content) for b in m.content if isinstance(b, ToolResultBlock)]))
        elif m.role is Role.USER:
            view.append(("user", m.text))
        else:
            view.append(("assistant", m.text, [(u.id, u.name, u.input) for u in m.tool_uses()]))
    return view


@given(conversations())
def test_an_openai_conversation_keeps_texts_tool_calls_and_results_in_order(conv):
    req = openai_api.parse_request({"model": "auto", "messages": as_openai(conv)})
    assert canonical_view(req.messages) == [(t[0], t[1], list(t[2])) if t[0] == "assistant" else t for t in conv]


@given(conversations())
def test_an_anthropic_conversation_keeps_texts_tool_calls_and_results_in_order(conv):
    req = anthropic_api.parse_request({"model": "auto", "max_tokens": 5, "messages": as_anthropic(conv)})
    assert canonical_view(req.messages) == [(t[0], t[1], list(t[2])) if t[0] == "assistant" else t for t in conv]


@settings(max_examples=200)
@given(st.one_of(json_values, st.dictionaries(st.sampled_from(["model", "messages", "tools", "tool_choice",
                                                               "max_tokens", "system", "response_format",
                                                               "stream", "stream_options"]), json_values)))
def test_any_json_body_is_parsed_or_refused_with_a_400_never_a_crash(body):
    for parse in (openai_api.parse_request, anthropic_api.parse_request):
        try:
            parse(body)
        except GatewayError as err:
            assert err.status == 400


results = st.builds(
    lambda text, uses, stop, tokens: TurnResult(
        "t_1", "p:m", "rule",
        Message(Role.ASSISTANT, ((TextBlock(text),) if text else ()) + tuple(ToolUseBlock(i, n, a) for i, n, a in uses),
                stop_reason=StopReason.TOOL_USE if uses else stop),
        Usage(tokens[0], tokens[1])),
    texts, calls, st.sampled_from([StopReason.END_TURN, StopReason.MAX_TOKENS]),
    st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)))


@given(results)
def test_a_rendered_openai_response_is_a_valid_chat_completion(result):
    completion = openai.types.chat.ChatCompletion.model_validate(openai_api.response(result))
    choice = completion.choices[0]
    assert completion.model == "p:m"
    assert choice.finish_reason == ("tool_calls" if result.tool_uses else
                                    "length" if result.message.stop_reason is StopReason.MAX_TOKENS else "stop")
    got = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []]
    assert got == [(u.id, u.name, u.input) for u in result.tool_uses]
    assert (choice.message.content or "") == result.text


@given(results)
def test_a_rendered_anthropic_response_is_a_valid_message(result):
    message = anthropic.types.Message.model_validate(anthropic_api.response(result))
    assert "".join(b.text for b in message.content if b.type == "text") == result.text
    assert [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"] == \
        [(u.id, u.name, u.input) for u in result.tool_uses]
    assert message.stop_reason == ("tool_use" if result.tool_uses else
                                   "max_tokens" if result.message.stop_reason is StopReason.MAX_TOKENS else "end_turn")


def sse_data(stream: bytes) -> list[dict]:
    frames = [f for f in stream.decode().split("\n\n") if f]
    out = []
    for frame in frames:
        data = [line[len("data: "):] for line in frame.split("\n") if line.startswith("data: ")]
        if data and data[0] != "[DONE]":
            out.append(json.loads(data[0]))
    return out


@given(st.lists(texts, max_size=6), results, st.booleans())
def test_an_openai_chunk_stream_reassembles_to_the_text_and_tool_calls(deltas, result, include_usage):
    enc = openai_api.ChunkStream("t_1", "p:m", include_usage)
    stream = enc.start() + b"".join(enc.text(d) for d in deltas) + enc.finish(result)
    assert stream.endswith(b"data: [DONE]\n\n")
    chunks = [openai.types.chat.ChatCompletionChunk.model_validate(c) for c in sse_data(stream)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(deltas)
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(tc.id, tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == \
        [(u.id, u.name, u.input) for u in result.tool_uses]
    assert (chunks[-1].usage is not None) is include_usage


@given(st.lists(texts, max_size=6), results)
def test_an_anthropic_event_stream_is_the_documented_sequence(deltas, result):
    enc = anthropic_api.EventStream("t_1", "p:m")
    stream = enc.start() + b"".join(enc.text(d) for d in deltas) + enc.finish(result)
    events = sse_data(stream)
    for e in events:   # each one is an event the SDK knows
        EVENT.validate_python(e)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    # blocks open and close in order, with increasing indexes
    opened = [e["index"] for e in events if e["type"] == "content_block_start"]
    closed = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert opened == closed == list(range(len(opened)))
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta"
                   and e["delta"]["type"] == "text_delta")
    assert text == "".join(deltas)
    tool_json = [json.loads(e["delta"]["partial_json"]) for e in events if e["type"] == "content_block_delta"
                 and e["delta"]["type"] == "input_json_delta"]
    assert tool_json == [u.input for u in result.tool_uses]


def test_openai_system_developer_images_and_tool_choice_none_translate():
    req = openai_api.parse_request({
        "model": "m", "messages": [
            {"role": "developer", "content": "rule one"},
            {"role": "system", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": [{"type": "text", "text": "see"},
                                         {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none",
        "max_completion_tokens": 7, "response_format": {"type": "json_object"}})
    assert req.system == "rule one\n\ntwo" and req.max_tokens == 7
    assert [t.name for t in req.tools] == ["f"] and req.tool_choice == "none"   # enforced upstream, tools kept
    assert req.messages[0].has_images() and req.messages[0].content[1].media_type == "image/jpeg"
    assert req.output_schema == {"type": "object"}


def test_a_named_tool_choice_keeps_every_tool_and_names_the_one_to_call():
    tools = [{"type": "function", "function": {"name": n}} for n in ("a", "b")]
    req = openai_api.parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools,
                                    "tool_choice": {"type": "function", "function": {"name": "b"}}})
    assert [t.name for t in req.tools] == ["a", "b"] and req.tool_choice == "tool:b"
    areq = anthropic_api.parse_request({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
                                        "tools": [{"name": "a"}, {"name": "b"}], "tool_choice": {"type": "tool",
                                                                                                 "name": "a"}})
    assert [t.name for t in areq.tools] == ["a", "b"] and areq.tool_choice == "tool:a"


def test_a_tool_choice_naming_an_unknown_tool_is_a_bad_request():
    with pytest.raises(GatewayError, match="no tool named 'c'"):
        openai_api.parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                  "tools": [{"type": "function", "function": {"name": "a"}}],
                                  "tool_choice": {"type": "function", "function": {"name": "c"}}})
    with pytest.raises(GatewayError, match="tool_choice.type"):
        anthropic_api.parse_request({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
                                     "tools": [{"name": "a"}], "tool_choice": {"type": "sometimes"}})


def test_anthropic_max_tokens_is_required_except_for_count_tokens():
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(GatewayError) as caught:
        anthropic_api.parse_request(body)
    assert caught.value.status == 400 and "max_tokens" in caught.value.message
    assert anthropic_api.parse_request(body, count_only=True).max_tokens is None


def test_a_tool_result_message_with_text_becomes_a_tool_message_then_a_user_message():
    req = anthropic_api.parse_request({"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "is_error": True,
                                      "content": [{"type": "text", "text": "bad"}]},
                                     {"type": "text", "text": "go on"}]}]})
    assert [m.role for m in req.messages] == [Role.TOOL, Role.USER]
    assert req.messages[0].content[0] == ToolResultBlock("x", "bad", True)


@pytest.mark.parametrize(("code", "status"), [
    ("provider_rate_limit", 429), ("provider_server_error", 502), ("provider_auth", 502), ("provider_network", 502),
    ("provider_bad_request", 400), ("no_model_available", 503), ("internal_error", 500)])
def test_turn_failures_map_to_the_contract_status_codes(code, status):
    assert turn_failure(code, "m").status == status


def test_error_bodies_have_each_apis_shape():
    err = GatewayError(404, "no such model", "model_not_found")
    assert err.openai_body() == {"error": {"message": "no such model", "type": "not_found_error", "param": None,
                                           "code": "model_not_found"}}
    assert err.anthropic_body() == {"type": "error", "error": {"type": "not_found_error", "message": "no such model"}}


def test_a_kept_partial_answer_is_folded_into_the_final_message():
    msgs = (Message(Role.ASSISTANT, (TextBlock("a"),)), Message(Role.ASSISTANT, (TextBlock("b"),),
                                                               stop_reason=StopReason.END_TURN))
    assert final_message(msgs).text == "ab"
    assert final_message(()).content == ()
