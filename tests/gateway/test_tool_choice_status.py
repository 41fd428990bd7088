"""The client's tool choice reaches the upstream in its own API's words, and ``status`` counts
running gateway turns."""
from __future__ import annotations

import threading

import attrs
import trio

from actors.providers.anthropic import wire_request as anthropic_wire
from actors.providers.base import LLMRequest
from protocol.canonical import Message, Role, TextBlock, ToolDefinition
from tests.fakes import Answer

OAI_TOOLS = [{"type": "function", "function": {"name": name, "description": name,
                                               "parameters": {"type": "object", "properties": {}}}}
             for name in ("get_weather", "get_time")]
ANTH_TOOLS = [{"name": name, "description": name, "input_schema": {"type": "object", "properties": {}}}
              for name in ("get_weather", "get_time")]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_an_openai_clients_tool_choice_reaches_an_anthropic_upstream_as_its_tool_choice(gateway):
    client = gateway.openai()
    cases = [("required", {"type": "any"}), ("none", {"type": "none"}),
             ({"type": "function", "function": {"name": "get_time"}}, {"type": "tool", "name": "get_time"})]
    for choice, wire in cases:
        gateway.anth.script(Answer(text=("ok",)))
        await gateway.call(lambda c=choice: client.chat.completions.create(
            model="haiku", messages=user("x"), tools=OAI_TOOLS, tool_choice=c))
        upstream = gateway.anth.requests[-1].json
        assert upstream["tool_choice"] == wire
        assert [t["name"] for t in upstream["tools"]] == ["get_weather", "get_time"]   # all still offered


async def test_parallel_tool_calls_false_reaches_an_anthropic_upstream_as_disable_parallel_tool_use(gateway):
    client = gateway.openai()
    gateway.anth.script(Answer(text=("ok",)))
    await gateway.call(lambda: client.chat.completions.create(
        model="haiku", messages=user("x"), tools=OAI_TOOLS, tool_choice="required", parallel_tool_calls=False))
    assert gateway.anth.requests[-1].json["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


async def test_an_anthropic_clients_tool_choice_reaches_an_openai_upstream_as_its_tool_choice(gateway):
    client = gateway.anthropic()
    cases = [({"type": "any"}, "required"), ({"type": "none"}, "none"), ({"type": "auto"}, "auto"),
             ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}})]
    for choice, wire in cases:
        gateway.oai.script(Answer(text=("ok",)))
        await gateway.call(lambda c=choice: client.messages.create(
            model="llama", max_tokens=32, messages=user("x"), tools=ANTH_TOOLS, tool_choice=c))
        upstream = gateway.oai.requests[-1].json
        assert upstream["tool_choice"] == wire
        assert "parallel_tool_calls" not in upstream
    gateway.oai.script(Answer(text=("ok",)))
    await gateway.call(lambda: client.messages.create(
        model="llama", max_tokens=32, messages=user("x"), tools=ANTH_TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert gateway.oai.requests[-1].json["parallel_tool_calls"] is False


async def test_without_a_tool_choice_none_is_sent_upstream(gateway):
    gateway.oai.script(Answer(text=("ok",)))
    client = gateway.openai()
    await gateway.call(lambda: client.chat.completions.create(model="llama", messages=user("x"), tools=OAI_TOOLS))
    assert "tool_choice" not in gateway.oai.requests[-1].json


def test_structured_output_wins_over_the_clients_tool_choice_on_an_anthropic_upstream():
    # The fakes' registry has no Anthropic model with structured output, so this pins the adapter itself.
    tools = (ToolDefinition("get_time", "", {"type": "object"}),)
    request = LLMRequest("claude", (Message(Role.USER, (TextBlock("x"),)),), tools=tools, tool_choice="none",
                         output_schema={"type": "object", "properties": {"a": {"type": "string"}}})
    assert anthropic_wire(request, stream=True)["tool_choice"] == {"type": "any"}
    request = attrs.evolve(request, output_schema=None)
    assert anthropic_wire(request, stream=True)["tool_choice"] == {"type": "none"}


async def test_status_counts_a_running_gateway_turn(gateway):
    gateway.oai.script(Answer(text=tuple(f"w{i} " for i in range(400)), delay=0.02))
    client = gateway.openai()
    streaming = trio.Event()
    release = threading.Event()

    def hold_the_stream_open() -> None:
        with client.chat.completions.with_streaming_response.create(
                model="llama", messages=user("long"), stream=True) as response:
            for _ in response.parse():
                trio.from_thread.run_sync(streaming.set)
                release.wait(30)
                break

    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.call, hold_the_stream_open)
        with trio.fail_after(10):
            await streaming.wait()
        try:
            report = await gateway.daemon.status()
        finally:
            release.set()
    assert report.turns_running == 1
    assert report.actors["gateway"]["turns_running"] == 1
    with trio.fail_after(10):   # the client went away: the turn ends and is no longer counted
        while (await gateway.daemon.status()).turns_running:
            await trio.sleep(0.01)


def test_a_forced_tool_choice_turns_anthropic_thinking_off():
    # The Messages API refuses a forced tool call (any / a named tool) with thinking enabled.
    tools = (ToolDefinition("get_time", "", {"type": "object"}),)
    request = LLMRequest("claude", (Message(Role.USER, (TextBlock("x"),)),), tools=tools, effort="high")
    assert "thinking" in anthropic_wire(request, stream=True)
    for choice in ("required", "tool:get_time"):
        body = anthropic_wire(attrs.evolve(request, tool_choice=choice), stream=True)
        assert "thinking" not in body and body["tool_choice"]["type"] in ("any", "tool")
