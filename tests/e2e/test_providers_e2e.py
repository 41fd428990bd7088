"""Whole turns against fake provider servers on 127.0.0.1 speaking the real wire formats."""
import json
import os
import sys
from pathlib import Path

import pytest
import trio

from actors.runtime.procgroup import group_alive
from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from protocol.canonical import ToolDefinition
from tests.fakes import Answer, Fail, ToolCall, open_fake_anthropic, open_fake_openai

from .conftest import run_turn

MODELS = """
providers:
  local: {{kind: openai_compatible, base_url: "{openai}", api_key_env: null}}
  anthropic: {{kind: anthropic, base_url: "{anthropic}", api_key_env: FAKE_ANTHROPIC_KEY}}
  agent: {{kind: cli}}
models:
  "local:llama":
    tier: balanced
    aliases: [llama]
    capabilities: {{max_context_tokens: 32000}}
    pricing: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}
  "anthropic:claude-haiku-4-5":
    tier: fast
    aliases: [haiku]
    capabilities: {{max_context_tokens: 200000, supports_images: true}}
    pricing: {{input_per_mtok: 1.0, output_per_mtok: 5.0}}
  "agent:script":
    aliases: [script]
    command: ["{python}", "{script}"]
    timeout_s: 30
"""

ROUTING = """
schema_version: 1
global_default: {default}
workspaces:
  {workspace}:
    default: {ws_default}
"""

AGENT_SCRIPT = """
import os, sys, time
prompt = sys.stdin.read()
open(os.environ["AGENT_PID_FILE"], "w").write(str(os.getpid()))
if "slow" in prompt:
    time.sleep(60)
print("agent says: " + str(len(prompt)) + " chars of prompt")
"""


class SteppedClock:
    """Wall time plus an offset the test advances: availability windows without sleeping."""

    def __init__(self):
        import time

        self._time = time.time
        self.offset = 0.0

    def __call__(self) -> float:
        return self._time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
async def fakes(nursery):
    async with open_fake_openai(api_key=None) as oai, open_fake_anthropic(api_key="k-test") as anth:
        yield oai, anth


def write_config(root: Path, oai, anth, *, default="local:llama", ws_default=None, workspace=None):
    home = root / "home"
    home.mkdir(exist_ok=True)
    script = root / "agent.py"
    script.write_text(AGENT_SCRIPT)
    (home / "models.yaml").write_text(MODELS.format(openai=oai.base_url, anthropic=anth.base_url,
                                                    python=sys.executable, script=script))
    routing = f"schema_version: 1\nglobal_default: {default}\n"
    if ws_default:
        routing += f"workspaces:\n  {workspace}:\n    default: {ws_default}\n"
    (home / "routing.yaml").write_text(routing)
    return home


@pytest.fixture
async def stack(nursery, short_tmp, fakes, wire_mode, monkeypatch):
    oai, anth = fakes
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k-test")
    monkeypatch.setenv("AGENT_PID_FILE", str(short_tmp / "agent.pid"))
    workspace = short_tmp / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("the answer is 42\n")
    home = write_config(short_tmp, oai, anth)
    paths = Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock")
    clock = SteppedClock()
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001), wire_mode=wire_mode,
                    clock=clock)
    await nursery.start(daemon.run)
    async with open_client(paths.endpoint) as client:
        client.clock = clock
        yield client, oai, anth, workspace, short_tmp
    daemon.request_stop("test over")


async def test_openai_compatible_answer_streams_through_a_turn(stack):
    client, oai, _, ws, _ = stack
    oai.script(Answer(text=("Hello", " from", " llama")))
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "hi there")
    assert "".join(e.text for e in events if isinstance(e, ev.TextDelta)) == "Hello from llama"
    done = events[-1]
    assert isinstance(done, ev.TurnCompleted) and done.model == "local:llama"
    body = oai.requests[-1].json
    assert body["stream"] is True and body["messages"][-1] == {"role": "user", "content": "hi there"}
    assert "Authorization" not in oai.requests[-1].headers and "authorization" not in oai.requests[-1].headers


async def test_a_scripted_read_file_call_runs_and_its_result_goes_back_in_the_next_request(stack):
    client, oai, _, ws, _ = stack
    oai.script(Answer(text=(), tool_calls=(ToolCall("read_file", {"path": "notes.txt"}, id="call_1"),)),
               Answer(text=("It says 42.",)))
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "what do my notes say?")
    called = [e for e in events if isinstance(e, ev.ToolCalled)]
    returned = [e for e in events if isinstance(e, ev.ToolReturned)]
    assert called[0].name == "read_file" and not returned[0].is_error
    second = oai.requests[-1].json["messages"]
    tool_msg = [m for m in second if m["role"] == "tool"][0]
    assert tool_msg["tool_call_id"] == "call_1" and "the answer is 42" in tool_msg["content"]
    assert isinstance(events[-1], ev.TurnCompleted)
    assert {e.model for e in events if isinstance(e, ev.TurnStarted)} == {"local:llama"}
    assert [r.json["model"] for r in oai.requests] == ["llama", "llama"]  # spec test 3: the lock holds
    assert not oai.violations


async def test_a_client_declared_tool_round_trips_through_the_client_library(stack):
    client, oai, _, ws, _ = stack
    oai.script(Answer(text=(), tool_calls=(ToolCall("lookup_ticket", {"id": "T-7"}, id="call_9"),)),
               Answer(text=("Ticket T-7 is open.",)))
    seen = []

    async def lookup(args):
        seen.append(args)
        return json.dumps({"id": args["id"], "state": "open"})

    tool = ToolDefinition("lookup_ticket", "Look up a ticket",
                          {"type": "object", "properties": {"id": {"type": "string"}}})
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "status of T-7?", tools={"lookup_ticket": (tool, lookup)})
    assert seen == [{"id": "T-7"}]
    assert any(t["function"]["name"] == "lookup_ticket" for t in oai.requests[0].json["tools"])
    tool_msg = [m for m in oai.requests[-1].json["messages"] if m["role"] == "tool"][0]
    assert json.loads(tool_msg["content"]) == {"id": "T-7", "state": "open"}
    assert isinstance(events[-1], ev.TurnCompleted)


async def test_a_cut_mid_stream_fails_the_turn_and_keeps_the_partial_text(stack):
    client, oai, _, ws, _ = stack
    oai.script(Answer(text=("partial ", "answer ", "never finished"), cut_after=2))
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "go")
    failed = events[-1]
    assert isinstance(failed, ev.TurnFailed) and failed.partial_text == "partial answer "
    assert len(oai.requests) == 1  # no silent retry that would duplicate the streamed text
    get_history = __import__("protocol.messages", fromlist=["GetHistory"]).GetHistory
    history = await client.request("session", get_history(info.session_id))
    assert "[incomplete" in history.messages[-1].text


async def test_a_cli_model_answers_and_cancelling_kills_the_script(stack):
    client, _, _, ws, root = stack
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "@script hello agent")
    assert "agent says:" in "".join(e.text for e in events if isinstance(e, ev.TextDelta))
    assert isinstance(events[-1], ev.TurnCompleted)
    pid_file = root / "agent.pid"
    pid_file.unlink()
    async with client.turn(info.session_id, "@script be slow") as turn:
        async for e in turn:
            if isinstance(e, ev.TurnStarted):
                with trio.fail_after(10):
                    while not pid_file.exists() or not pid_file.read_text():
                        await trio.sleep(0.02)
                await turn.cancel()
    assert isinstance(turn.terminal, ev.TurnCancelled)
    pid = int(pid_file.read_text())
    with trio.fail_after(5):
        while group_alive(pid):  # the script leads its own process group
            await trio.sleep(0.05)


async def test_a_failing_provider_is_marked_unavailable_and_the_next_turn_falls_through(stack):
    """Issue 5: 500s → one failed turn naming the model as unavailable → next turn falls through with
    the banner → a success on the first provider brings routing back to it."""
    client, oai, anth, ws, root = stack
    home = root / "home"
    (home / "routing.yaml").write_text(
        f"schema_version: 1\nglobal_default: anthropic:claude-haiku-4-5\n"
        f"workspaces:\n  {ws}:\n    default: local:llama\n")
    oai.script(*[Fail(500, "server_error")] * 5)
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "first")
    failed = events[-1]
    assert isinstance(failed, ev.TurnFailed)
    assert "local:llama is now marked unavailable" in failed.message
    anth.script(Answer(text=("haiku here",)))
    _, events = await run_turn(client, info.session_id, "second")
    route = events[0]
    assert route.chosen_model == "anthropic:claude-haiku-4-5"
    assert route.chain[-2].validation_failure == "provider_unavailable"
    banners = [e.text for e in events if isinstance(e, ev.Banner)]
    assert "local:llama currently unavailable. Routing fell through to anthropic:claude-haiku-4-5." in banners
    status = await client.status()
    assert any(s["scope"] == "local:llama" for s in status.availability)
    # Recovery after 5 minutes without attempts on the (stepped) clock: routing returns to llama.
    client.clock.advance(301)
    oai.script(Answer(text=("llama is back",)))
    _, events = await run_turn(client, info.session_id, "third")
    assert events[0].chosen_model == "local:llama"
    assert (await client.status()).availability == ()


async def test_availability_reset_forces_recovery(stack):
    client, oai, anth, ws, root = stack
    (root / "home" / "routing.yaml").write_text(
        "schema_version: 1\nglobal_default: anthropic:claude-haiku-4-5\n"
        f"workspaces:\n  {ws}:\n    default: local:llama\n")
    oai.script(Fail(401, "invalid_api_key"))
    info = await client.open_session(workspace=str(ws))
    _, events = await run_turn(client, info.session_id, "first")
    assert "The local provider is now marked unavailable" in events[-1].message
    await client.reset_availability("local")
    oai.script(Answer(text=("back",)))
    _, events = await run_turn(client, info.session_id, "second")
    assert events[0].chosen_model == "local:llama"


async def test_ask_json_from_the_command_line_streams_the_fake_servers_answer(stack):
    client, oai, _, ws, root = stack
    oai.script(Answer(text=("straight", " from", " the", " server")))
    env = {**os.environ, "ORCHESTRATOR_ENDPOINT": client.endpoint}
    proc = await trio.run_process([sys.executable, "-m", "orchestrator", "ask", "--json", "hi"], env=env,
                                  capture_stdout=True, capture_stderr=True)
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert "".join(e["text"] for e in events if e["type"] == "text.delta") == "straight from the server"
    assert events[-1]["type"] == "turn.completed" and events[-1]["model"] == "local:llama"


async def test_a_slow_reader_loses_no_event_of_a_long_stream(stack):
    """Thousands of text.delta events queue for a client that is not reading; none is dropped."""
    client, oai, _, ws, _ = stack
    chunks = tuple(f"{i} " for i in range(6000))
    oai.script(Answer(text=chunks))
    info = await client.open_session(workspace=str(ws))
    deltas = []
    async with client.turn(info.session_id, "long answer please") as turn:
        await trio.sleep(2)  # the whole answer streams while nobody reads
        with trio.fail_after(30):  # a dropped terminal event would otherwise wait forever
            async for e in turn:
                if isinstance(e, ev.TextDelta):
                    deltas.append(e.text)
    assert isinstance(turn.terminal, ev.TurnCompleted)
    assert "".join(deltas) == "".join(chunks)
