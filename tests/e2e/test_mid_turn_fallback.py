"""Mid-turn fallback (issue 17 item 3, docs/workflows.md): opt-in per workspace, before the first byte only.

The workspace default is ``local:llama`` (the fake OpenAI-compatible server), the global default
``anthropic:claude-haiku-4-5``: the chain's next validated candidate once llama is out.
"""
import json

import pytest

from orchestrator.render import render_trace
from protocol import events as ev
from protocol.canonical import Role
from protocol.messages import GetHistory
from tests.fakes import Answer, Fail

from .conftest import run_turn
from .test_providers_e2e import fakes, stack  # noqa: F401 — the daemon on fake providers

LLAMA, HAIKU = "local:llama", "anthropic:claude-haiku-4-5"
FAILING_CALL = [Fail(503, "server_error", "upstream overloaded")] * 8   # more than the retry budget


def configure(root, ws, *, opt_in: bool) -> None:
    (root / "home" / "routing.yaml").write_text(
        f"schema_version: 1\nglobal_default: {HAIKU}\nworkspaces:\n  {ws}:\n    default: {LLAMA}\n")
    if opt_in:
        (ws / ".orchestrator").mkdir(exist_ok=True)
        (ws / ".orchestrator" / "workspace.yaml").write_text("mid_turn_fallback: true\n")


def banners(events) -> list[str]:
    return [e.text for e in events if isinstance(e, ev.Banner)]


async def test_opted_in_turn_failing_before_the_first_byte_completes_on_the_next_candidate(stack):  # noqa: F811
    client, oai, anth, ws, root = stack
    configure(root, ws, opt_in=True)
    oai.script(*FAILING_CALL)
    anth.script(Answer(text=("haiku", " answers")))
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "hello")
    done = events[-1]
    assert isinstance(done, ev.TurnCompleted) and done.model == HAIKU
    assert "".join(e.text for e in events if isinstance(e, ev.TextDelta)) == "haiku answers"
    assert f"{LLAMA} failed before answering (server_error). Falling back to {HAIKU}." in banners(events)
    # Exactly one route.decided per turn: the fallback is a second decision in the stored trace.
    decided = [e for e in events if isinstance(e, ev.RouteDecided)]
    assert len(decided) == 1 and decided[0].chosen_model == LLAMA
    reply = await client.trace(done.turn_id)
    assert reply.route.chosen_model == LLAMA
    assert [r.chosen_model for r in reply.fallback] == [HAIKU]
    excluded = [e for e in reply.fallback[0].chain if e.candidate_model == LLAMA]
    assert excluded and excluded[0].validation_failure == "provider_unavailable"
    text = render_trace(reply.route, reply.fallback)
    assert f"Chose: {LLAMA}" in text and f"Chose: {HAIKU}" in text
    assert f"Fallback 1: {LLAMA} failed before answering" in text
    # The history holds one answer, from the fallback model, and the next turn works as usual.
    history = await client.request("session", GetHistory(info.session_id))
    assert [m.model for m in history.messages if m.role is Role.ASSISTANT] == [HAIKU]


async def test_a_failure_after_the_first_byte_still_fails_the_turn(stack):  # noqa: F811
    client, oai, anth, ws, root = stack
    configure(root, ws, opt_in=True)
    oai.script(Answer(text=("Hel", "lo", " there"), cut_after=1))
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "hello")
    failed = events[-1]
    assert isinstance(failed, ev.TurnFailed) and failed.model == LLAMA
    assert not any("Falling back" in b for b in banners(events))
    assert anth.requests == []


async def test_without_the_opt_in_a_failure_before_the_first_byte_fails_the_turn(stack):  # noqa: F811
    client, oai, anth, ws, root = stack
    configure(root, ws, opt_in=False)
    oai.script(*FAILING_CALL)
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "hello")
    failed = events[-1]
    assert isinstance(failed, ev.TurnFailed) and failed.error == "provider_server_error"
    assert f"{LLAMA} failed" in failed.message and "Falling back" not in " ".join(banners(events))
    assert anth.requests == []
    assert (await client.trace(failed.turn_id)).fallback == ()


async def test_when_the_fallback_model_fails_too_the_turn_fails_naming_both(stack):  # noqa: F811
    client, oai, anth, ws, root = stack
    configure(root, ws, opt_in=True)
    oai.script(*FAILING_CALL)
    anth.script(*[Fail(529, "overloaded_error", "anthropic overloaded")] * 8)
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "hello")
    failed = events[-1]
    assert isinstance(failed, ev.TurnFailed)
    assert failed.error.startswith("provider_")
    assert LLAMA in failed.message and HAIKU in failed.message
    assert "no other validated candidate" in failed.message
    assert f"{LLAMA} failed before answering (server_error). Falling back to {HAIKU}." in banners(events)


async def test_cancelling_during_the_fallback_cancels_the_turn(stack):  # noqa: F811
    client, oai, anth, ws, root = stack
    configure(root, ws, opt_in=True)
    oai.script(*FAILING_CALL)
    anth.script(Answer(text=("too late",), headers_delay=30))
    info = await client.open_session(workspace=str(ws))
    seen = []
    async with client.turn(info.session_id, "hello") as turn:
        async for e in turn:
            seen.append(e)
            if isinstance(e, ev.Banner) and "Falling back" in e.text:
                await turn.cancel()
    assert isinstance(turn.terminal, ev.TurnCancelled)
    assert not any(isinstance(e, ev.TextDelta) for e in seen)


@pytest.mark.parametrize("value,ok", [("true", True), ("false", False), ("yes please", False)])
def test_the_workspace_key_is_validated(value, ok):
    from actors.tools.workspace import parse_settings

    settings = parse_settings(f"mid_turn_fallback: {json.dumps(value) if ' ' in value else value}\n")
    assert settings.mid_turn_fallback is ok
    assert bool(settings.errors) == (value == "yes please")
