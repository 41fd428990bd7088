"""delegate() end to end with fake providers (spec §6, §8.11, §10.1 tests 12, 14, 16, 22, 24, 26)."""
import json

import jsonschema
import pytest
import trio

from actors.worker.delegation import INSUFFICIENT_CONTEXT_SCHEMA
from actors.runtime.procgroup import group_alive
from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from protocol.messages import DecideRoute
from tests.fakes import Answer, ToolCall, open_fake_anthropic, open_fake_openai

from .conftest import run_turn

MODELS = """
providers:
  anthropic: {{kind: anthropic, base_url: "{anth}", api_key_env: FAKE_ANTHROPIC_KEY}}
  fastco: {{kind: openai_compatible, base_url: "{fast}", api_key_env: null}}
  balco: {{kind: openai_compatible, base_url: "{bal}", api_key_env: null}}
models:
  "anthropic:claude-opus-4-7":
    tier: deep
    can_delegate: true
    aliases: [opus]
    capabilities: {{max_context_tokens: 200000, supports_images: true, supports_structured_output: false}}
    pricing: {{input_per_mtok: 15.0, output_per_mtok: 75.0}}
  "fastco:mini":
    tier: fast
    aliases: [mini]
    capabilities: {{max_context_tokens: 128000, supports_images: false}}
    pricing: {{input_per_mtok: 0.25, output_per_mtok: 2.0}}
  "balco:mid":
    tier: balanced
    can_delegate: true
    aliases: [mid]
    capabilities: {{max_context_tokens: 128000, supports_images: true, supports_structured_output: true}}
    pricing: {{input_per_mtok: 3.0, output_per_mtok: 15.0}}
"""

ROUTING = """
schema_version: 1
global_default: anthropic:claude-opus-4-7
tiers: {fast: "fastco:mini", balanced: "balco:mid", deep: "anthropic:claude-opus-4-7"}
"""


@pytest.fixture
async def stack(nursery, short_tmp, wire_mode, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k-test")
    async with open_fake_anthropic(api_key="k-test") as anth, open_fake_openai(api_key=None) as fast, \
            open_fake_openai(api_key=None) as bal:
        home = short_tmp / "home"
        home.mkdir()
        (home / "models.yaml").write_text(MODELS.format(anth=anth.base_url, fast=fast.base_url, bal=bal.base_url))
        (home / "routing.yaml").write_text(ROUTING)
        ws = short_tmp / "ws"
        (ws / ".orchestrator").mkdir(parents=True)
        (ws / ".orchestrator" / "workspace.yaml").write_text("tools: {run_command: true}\n")
        (ws / "src").mkdir()
        (ws / "src" / "app.py").write_text("foo = 1\nprint(foo)\n")
        paths = Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock")
        daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001), wire_mode=wire_mode)
        await nursery.start(daemon.run)
        async with open_client(paths.endpoint) as client:
            client.daemon = daemon  # actor messages go through the daemon's own system, not the client socket
            info = await client.open_session(workspace=str(ws))
            yield client, info.session_id, anth, fast, bal, ws
        daemon.request_stop("test over")


def delegate_call(id_, tier="fast", task="rename `foo` to `bar` in src/", context=None, **extra):
    args = {"tier": tier, "task": task, "context": context or {"mode": "minimal"}, **extra}
    return ToolCall("delegate", args, id=id_)


def tool_results(request_json):
    """Anthropic wire: the tool_result blocks of the last user message."""
    last = request_json["messages"][-1]
    return [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]


async def test_planner_delegates_to_the_fast_tier_and_continues_on_its_own_model(stack):
    """Spec §8.11 and test 12: the worker runs on the tier's model; the planner's lock holds."""
    client, sid, anth, fast, bal, ws = stack
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a"),)), Answer(text=("Renamed; all done.",)))
    fast.script(Answer(text=("renamed foo to bar in src/app.py",)))
    _, events = await run_turn(client, sid, "rename foo to bar please")
    started = next(e for e in events if isinstance(e, ev.DelegateStarted))
    completed = next(e for e in events if isinstance(e, ev.DelegateCompleted))
    assert started.tier == "fast" and started.model == "fastco:mini"
    assert completed.worker_session_id == started.worker_session_id
    worker_req = fast.requests[0].json
    assert worker_req["messages"][0]["role"] == "system"
    assert "You are a sub-agent invoked by another agent" in worker_req["messages"][0]["content"]
    assert "You are running on model fastco:mini" in worker_req["messages"][0]["content"]
    result = json.loads(tool_results(anth.requests[-1].json)[0]["content"])
    assert result["success"] is True and result["output"] == "renamed foo to bar in src/app.py"
    assert result["worker_session_id"] == started.worker_session_id
    done = events[-1]
    assert isinstance(done, ev.TurnCompleted) and done.model == "anthropic:claude-opus-4-7"
    trace = await client.trace(started.worker_turn_id)
    chain = trace.route.chain
    assert [p.policy for p in chain][-1] == "delegate_request" and chain[-1].verdict == "chose"
    assert chain[0].verdict == "not_applicable"  # the chain runs end to end for workers

    # spec test 16: the session's cost equals the sum of usage.cost_usd, workers included
    report = await client.cost(sid)
    assert report.total_usd == done.usage.cost_usd
    roles = {(m["model"], m["role"]) for m in report.by_model}
    assert ("fastco:mini", "worker") in roles and ("anthropic:claude-opus-4-7", "planner") in roles
    assert report.tree["workers"]["delegations"] == 1


async def test_workers_get_no_delegate_tool_and_calling_it_says_workers_cannot_delegate(stack):
    """Spec test 14."""
    client, sid, anth, fast, bal, ws = stack
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a"),)), Answer(text=("ok",)))
    fast.script(Answer(text=(), tool_calls=(delegate_call("tu_w"),)), Answer(text=("fine, doing it myself",)))
    await run_turn(client, sid, "go")
    worker_tools = {t["function"]["name"] for t in fast.requests[0].json.get("tools", [])}
    assert "delegate" not in worker_tools and "_request_context" in worker_tools
    planner_tools = {t["name"] for t in anth.requests[0].json["tools"]}
    assert "delegate" in planner_tools
    tool_msg = [m for m in fast.requests[1].json["messages"] if m["role"] == "tool"][0]
    assert "workers cannot delegate" in tool_msg["content"]


async def test_a_worker_calling_memory_add_gets_an_unknown_tool_error(stack):
    """Spec test 24: workers are read-only against memory."""
    client, sid, anth, fast, bal, ws = stack
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a"),)), Answer(text=("ok",)))
    fast.script(Answer(text=(), tool_calls=(ToolCall("memory_add", {"text": "remember me"}, id="m1"),)),
                Answer(text=("could not",)))
    await run_turn(client, sid, "go")
    tool_msg = [m for m in fast.requests[1].json["messages"] if m["role"] == "tool"][0]
    assert "unknown tool: memory_add" in tool_msg["content"]
    assert not (ws / ".orchestrator" / "MEMORY.md").exists()


async def test_insufficient_context_is_returned_as_a_structured_request(stack):
    """Spec test 26."""
    client, sid, anth, fast, bal, ws = stack
    payload = {"missing": [{"type": "file", "ref": "src/auth/jwt.ts", "hint": "need the signing logic"},
                           {"type": "decision", "ref": "token expiration policy", "hint": "agreed window"}],
               "summary": "Need the JWT implementation and the expiration policy."}
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a"),)), Answer(text=("I'll take over.",)))
    fast.script(Answer(text=(), tool_calls=(ToolCall("_request_context", payload, id="rc1"),)))
    _, events = await run_turn(client, sid, "go")
    failed = next(e for e in events if isinstance(e, ev.DelegateFailed))
    assert failed.error == "insufficient_context"
    jsonschema.validate(failed.output, INSUFFICIENT_CONTEXT_SCHEMA)
    assert failed.output == payload
    result = json.loads(tool_results(anth.requests[-1].json)[0]["content"])
    assert result["error"] == "insufficient_context" and result["output"] == payload
    assert len(fast.requests) == 1  # the worker's session ended with the request


async def test_output_schema_is_validated(stack):
    client, sid, anth, fast, bal, ws = stack
    schema = {"type": "object", "required": ["names"], "properties": {"names": {"type": "array"}}}
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a", tier="balanced", output_schema=schema),
                                            delegate_call("tu_b", tier="balanced", output_schema=schema))),
                Answer(text=("ok",)))
    bal.default = Answer(text=('```json\n{"names": ["a", "b"]}\n```',))
    _, events = await run_turn(client, sid, "go")
    results = {r["tool_use_id"]: json.loads(r["content"]) for r in tool_results(anth.requests[-1].json)}
    assert results["tu_a"]["success"] and results["tu_a"]["output"] == {"names": ["a", "b"]}


async def test_output_that_does_not_match_the_schema_fails_with_the_raw_output(stack):
    client, sid, anth, fast, bal, ws = stack
    schema = {"type": "object", "required": ["names"]}
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a", tier="balanced", output_schema=schema),)),
                Answer(text=("ok",)))
    bal.script(Answer(text=("not json at all",)))
    _, events = await run_turn(client, sid, "go")
    failed = next(e for e in events if isinstance(e, ev.DelegateFailed))
    assert failed.error == "output_schema_validation_failed" and failed.output == "not json at all"


async def test_tier_exhaustion_at_deep_returns_no_model_available_for_tier(stack):
    """Spec test 22: deep cannot do structured output and there is no tier above it."""
    client, sid, anth, fast, bal, ws = stack
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a", tier="deep", output_schema={"type": "object"}),)),
                Answer(text=("ok",)))
    _, events = await run_turn(client, sid, "go")
    failed = next(e for e in events if isinstance(e, ev.DelegateFailed))
    assert failed.error == "no_model_available_for_tier"
    assert isinstance(events[-1], ev.TurnCompleted)


async def test_unknown_references_in_explicit_context_are_errors_the_planner_sees(stack):
    client, sid, anth, fast, bal, ws = stack
    ctx = {"mode": "explicit", "include": [{"type": "file", "path": "src/missing.py"}]}
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a", context=ctx),)), Answer(text=("ok",)))
    await run_turn(client, sid, "go")
    res = tool_results(anth.requests[-1].json)[0]
    assert res.get("is_error") is True and "does not exist" in res["content"]
    assert not fast.requests


async def test_explicit_context_passes_files_by_reference_and_inlines_notes(stack):
    client, sid, anth, fast, bal, ws = stack
    ctx = {"mode": "explicit", "include": [{"type": "file", "path": "src/app.py"},
                                           {"type": "inline", "label": "decision", "text": "use bar, not baz"}]}
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_a", context=ctx),)), Answer(text=("ok",)))
    fast.script(Answer(text=("done",)))
    await run_turn(client, sid, "go")
    system = fast.requests[0].json["messages"][0]["content"]
    assert "file src/app.py (read it with read_file)" in system and "decision: use bar, not baz" in system
    assert "print(foo)" not in system  # files are references the worker re-reads, not inlined


async def test_capability_upgrade_fast_to_balanced_through_the_router_actor(stack):
    """Spec test 13: a worker task with images and a text-only fast model is upgraded."""
    client, sid, *_ = stack
    decision = await client.daemon.system.request(
        "router", DecideRoute("w_x", "t_x", "describe the screenshot", has_images=True,
                              delegate_tier="fast", is_worker=True))
    assert decision.route.chosen_model == "balco:mid"
    last = decision.route.chain[-1]
    assert last.policy == "delegate_request" and "upgraded to balanced" in last.reason


async def test_cancelling_the_parent_cancels_three_workers_and_their_tool_processes(stack, short_tmp):
    """Issue 6: within 2 s turn.cancelled, every delegation cancelled_by_user, no child left."""
    client, sid, anth, fast, bal, ws = stack
    pid_file = short_tmp / "cmd.pid"
    anth.script(Answer(text=(), tool_calls=(delegate_call("tu_1", tier="fast", task="slow one"),
                                            delegate_call("tu_2", tier="balanced", task="run the command"),
                                            delegate_call("tu_3", tier="deep", task="slow three"))),
                Answer(text=("never reached",), delay=0.5), Answer(text=("after",)))
    fast.default = Answer(text=tuple(f"w{i} " for i in range(200)), delay=0.2)
    bal.script(Answer(text=(), tool_calls=(ToolCall("run_command", {"command": f"echo $$ > {pid_file}; sleep 30"},
                                                    id="rc"),)))
    async with client.turn(sid, "do three things") as turn:
        async for e in turn:
            if isinstance(e, ev.TurnStarted):
                with trio.fail_after(20):
                    while not (pid_file.exists() and pid_file.read_text().strip()) or len(fast.requests) < 1:
                        await trio.sleep(0.02)
                t0 = trio.current_time()
                await turn.cancel()
    elapsed = trio.current_time() - t0
    assert isinstance(turn.terminal, ev.TurnCancelled) and elapsed < 2.0
    pgid = int(pid_file.read_text())
    with trio.fail_after(2):
        while group_alive(pgid):
            await trio.sleep(0.05)
    from protocol.messages import GetHistory

    history = (await client.request("session", GetHistory(sid))).messages
    cancelled = history[-1]
    assert cancelled.role.value == "tool" and len(cancelled.content) == 3   # every tool_use answered
    assert all(b.is_error and b.content == "cancelled by user" for b in cancelled.content)
    bal.script(Answer(text=("next answer",)))
    _, events = await run_turn(client, sid, "@mid next turn")
    assert isinstance(events[-1], ev.TurnCompleted)  # the session accepts the next turn
    db_events = __import__("sqlite3").connect(str(short_tmp / "state" / "orchestrator.db"))
    failed = [json.loads(d) for (d,) in db_events.execute("SELECT data FROM events WHERE type='delegate.failed'")]
    db_events.close()
    assert sorted(f["tool_use_id"] for f in failed) == ["tu_1", "tu_2", "tu_3"]
    assert {f["error"] for f in failed} == {"cancelled_by_user"}
