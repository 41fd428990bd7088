"""Effort end to end: models.yaml declares it, adapters put it on the wire, the router drops an
unsupported one with a note in route.decided — never an error."""
import pytest

from actors.config.files import load_registry_text
from actors.config.registry import effective_effort
from actors.providers.anthropic import THINKING_BUDGETS, AnthropicAdapter
from actors.providers.base import LLMRequest
from actors.providers.cli import build_argv
from actors.providers.openai import OpenAIAdapter
from protocol import events as ev
from protocol.canonical import Message, Role, TextBlock, ThinkingBlock, ToolUseBlock, ToolResultBlock
from tests.fakes import Answer, ToolCall, drain, open_fake_anthropic, open_fake_openai

from .registry_fixture import registry


def request(**kw) -> LLMRequest:
    return LLMRequest(model="m", messages=(Message(Role.USER, (TextBlock("hi"),)),), **kw)


# --- models.yaml ---------------------------------------------------------------------------------

def test_models_yaml_family_and_efforts_parse():
    reg = registry()
    gpt = reg.models["openai:gpt-5.4"]
    assert gpt.efforts == ("minimal", "low", "medium", "high", "xhigh") and gpt.family is None
    assert reg.models["codex:gpt-5.5"].family == "openai"
    assert reg.models["openai:gpt-5.4-mini"].efforts == ()


def test_models_yaml_bad_family_and_efforts_are_file_line_key_errors():
    text = """\
providers: {openai: {kind: openai}}
models:
  "openai:a":
    efforts: [low, turbo, low]
  "openai:b":
    efforts: high
    family: [x]
  "openai:c":
    efforts: {low: 1}
"""
    reg, errors = load_registry_text(text)
    assert reg is None
    assert errors == [
        "models.yaml:4: models['openai:a'].efforts[1]: 'turbo' is not an effort "
        "(expected one of: minimal, low, medium, high, xhigh)",
        "models.yaml:4: models['openai:a'].efforts[2]: effort 'low' is listed twice",
        "models.yaml:7: models['openai:b'].family: expected a family name such as anthropic or openai, got a list",
        "models.yaml:9: models['openai:c'].efforts: expected a list of efforts (minimal, low, medium, high, xhigh), "
        "got a mapping",
    ]


@pytest.mark.parametrize(("asked", "model", "kept", "note"), [
    ("high", "openai:gpt-5.4", "high", None),
    ("xhigh", "anthropic:claude-sonnet-4-6", None, "accepts low, medium, high"),
    ("low", "openai:gpt-5.4-mini", None, "accepts no effort setting"),
    ("turbo", "openai:gpt-5.4", None, "not an effort"),
    (None, "openai:gpt-5.4", None, None),
])
def test_effective_effort_keeps_only_what_the_model_declares(asked, model, kept, note):
    effort, warning = effective_effort(asked, registry().models[model])
    assert effort == kept
    assert (warning is None) if note is None else (note in warning)


# --- the wire --------------------------------------------------------------------------------------

async def test_openai_adapter_sends_reasoning_effort():
    async with open_fake_openai() as srv:
        adapter = OpenAIAdapter(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer(), Answer())
        await drain(adapter.stream(request(effort="xhigh")))
        await drain(adapter.stream(request()))
        await adapter.aclose()
    assert srv.violations == []
    assert srv.bodies[0]["reasoning_effort"] == "xhigh"
    assert "reasoning_effort" not in srv.bodies[1]


async def test_anthropic_adapter_maps_effort_to_a_thinking_budget_and_raises_max_tokens():
    async with open_fake_anthropic() as srv:
        adapter = AnthropicAdapter(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer(thinking=("hmm",)), Answer())
        out = await drain(adapter.stream(request(effort="high", max_tokens=1000, temperature=0.3)))
        await drain(adapter.stream(request(max_tokens=1000, temperature=0.3)))
        await adapter.aclose()
    assert srv.violations == []           # the fake checks budget >= 1024, < max_tokens, no temperature
    with_effort, without = srv.bodies
    assert with_effort["thinking"] == {"type": "enabled", "budget_tokens": THINKING_BUDGETS["high"]}
    assert with_effort["max_tokens"] == 1000 + THINKING_BUDGETS["high"] and "temperature" not in with_effort
    assert "thinking" not in without and without["max_tokens"] == 1000 and without["temperature"] == 0.3
    assert out.completed.message.text == "Hello world"


async def test_anthropic_thinking_is_left_off_when_structured_output_forces_a_tool():
    async with open_fake_anthropic() as srv:
        adapter = AnthropicAdapter(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer(text=(), tool_calls=(ToolCall("structured_output", {"a": 1}),)))
        await drain(adapter.stream(request(effort="low", output_schema={"type": "object"})))
        await adapter.aclose()
    assert srv.violations == [] and "thinking" not in srv.bodies[0]


async def test_anthropic_tool_loop_with_effort_hands_the_signed_thinking_back():
    history = (Message(Role.USER, (TextBlock("weather?"),)),
               Message(Role.ASSISTANT, (ThinkingBlock("let me look", "sig-1"), ToolUseBlock("t1", "w", {}))),
               Message(Role.TOOL, (ToolResultBlock("t1", "sunny"),)))
    async with open_fake_anthropic() as srv:
        adapter = AnthropicAdapter(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer())
        await drain(adapter.stream(LLMRequest(model="m", messages=history, effort="medium")))
        await adapter.aclose()
    assert srv.violations == []
    assert srv.bodies[0]["messages"][1]["content"][0] == {"type": "thinking", "thinking": "let me look",
                                                          "signature": "sig-1"}


def test_cli_command_gets_effort_only_when_there_is_one():
    template = ["codex", "exec", "--model", "{model}", "--config=model_reasoning_effort={effort}"]
    assert build_argv(template, "gpt-5.5", "high")[-1] == "--config=model_reasoning_effort=high"
    assert build_argv(template, "gpt-5.5") == ["codex", "exec", "--model", "gpt-5.5"]


# --- through the daemon --------------------------------------------------------------------------

async def _turn(stack, text, effort):
    info = await stack.client.open_session()
    events = []
    async with stack.client.turn(info.session_id, text, effort=effort) as turn:
        async for event in turn:
            events.append(event)
    return events


async def test_an_ask_effort_reaches_the_fake_anthropic_server_as_a_thinking_budget(stack):
    stack.anth.script(Answer(thinking=("ok",), text=("fine",)))
    events = await _turn(stack, "@sonnet think hard", "medium")
    route = events[0]
    assert isinstance(route, ev.RouteDecided) and route.effort == "medium" and route.warnings == ()
    assert isinstance(events[-1], ev.TurnCompleted)
    assert stack.anth.bodies[-1]["thinking"] == {"type": "enabled", "budget_tokens": THINKING_BUDGETS["medium"]}


async def test_an_ask_effort_reaches_the_fake_openai_server_as_reasoning_effort(stack):
    stack.oai.script(Answer())
    events = await _turn(stack, "@gpt go", "minimal")
    assert isinstance(events[-1], ev.TurnCompleted)
    assert stack.oai.bodies[-1]["reasoning_effort"] == "minimal"


async def test_an_unsupported_effort_is_dropped_with_a_note_in_the_trace_not_an_error(stack):
    stack.anth.script(Answer())
    events = await _turn(stack, "@sonnet go", "xhigh")
    route = events[0]
    assert isinstance(events[-1], ev.TurnCompleted)
    assert route.effort is None
    assert route.warnings == ("effort 'xhigh' ignored: anthropic:claude-sonnet-4-6 accepts low, medium, high "
                              "(models.yaml efforts)",)
    assert "thinking" not in stack.anth.bodies[-1]
    trace = await stack.client.trace(route.turn_id)
    assert trace.route.warnings == route.warnings     # persisted: `orchestrator trace` shows it


async def test_ask_effort_flag_prints_the_dropped_effort_note(stack):
    stack.oai.script(Answer(text=("done",)))
    code, out, err = await stack.cli("ask", "--effort", "turbo", "@gpt", "hello")
    assert code == 0 and out.strip() == "done"
    assert "effort 'turbo' ignored: not an effort" in err
    assert "reasoning_effort" not in stack.oai.bodies[-1]


def test_start_turn_effort_and_trace_notes_are_bounded_at_the_edge():
    from protocol.bounds import MAX_NOTES, OutOfBounds, check_bounds
    from protocol.messages import StartTurn

    check_bounds(StartTurn("s1", "hi", effort="high", trace_notes=("a note",)))
    for bad in (StartTurn("s1", "hi", effort="x" * 300), StartTurn("s1", "hi", trace_notes=("n",) * (MAX_NOTES + 1)),
                StartTurn("s1", "hi", trace_notes=("x" * 3000,))):
        with pytest.raises(OutOfBounds):
            check_bounds(bad)


async def test_ask_effort_flag_is_case_blind_like_the_tier(stack):
    stack.oai.script(Answer(text=("done",)))
    code, out, err = await stack.cli("ask", "--effort", "HIGH", "@gpt", "hello")
    assert code == 0 and "ignored" not in err, err
    assert stack.oai.bodies[-1]["reasoning_effort"] == "high"
