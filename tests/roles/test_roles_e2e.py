"""Dispatch by role end to end on fake providers: ask --role and its trace, the tier floor at
delegation time, waiting_approval, the roles CLI and roles.yaml hot reload."""
import json
import os
import sys

import pytest
import trio

from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from tests.fakes import Answer, ToolCall, open_fake_anthropic, open_fake_openai

from .conftest import ROLES_TEXT, models_text

PY = sys.executable
KEYS = {"FAKE_ANTHROPIC_KEY": "k-a", "FAKE_OPENAI_KEY": "k-o"}
ROUTING = """schema_version: 1
global_default: anthropic:claude-sonnet-4-6
tiers: {fast: "openai:gpt-5.4-mini", balanced: "anthropic:claude-sonnet-4-6", deep: "anthropic:claude-opus-4-8"}
"""
# One role above a balanced planner with no pinned agent: nothing lets a worker run on it.
DEEP_RESEARCH = """  deep-research:
    primary: "openai:gpt-5.5"
    cost_tier: high
    latency_tier: slow
    consumers: [researcher]
agents:
  researcher: {role: deep-research, mode: auto}
"""
ORCHESTRATOR_ROW = """    fallbacks: ["openai:gpt-5.5"]
    cost_tier: high
    latency_tier: slow
    reasoning_effort_hint: high
    consumers: [orchestrator]"""


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode()
        self.stderr = proc.stderr.decode()


async def cli(paths: Paths, *args: str) -> Result:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(paths.home), "ORCHESTRATOR_STATE": str(paths.state),
           "ORCHESTRATOR_ENDPOINT": paths.endpoint}
    return Result(await trio.run_process([PY, "-m", "orchestrator", *args], env=env, capture_stdout=True,
                                         capture_stderr=True, check=False))


def write_home(short_tmp, anth_url: str, oai_url: str, roles: str = ROLES_TEXT) -> Paths:
    home = short_tmp / "home"
    home.mkdir(exist_ok=True)
    (home / "models.yaml").write_text(models_text(anth_url, oai_url))
    (home / "routing.yaml").write_text(ROUTING)
    (home / "roles.yaml").write_text(roles)
    return Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock")


@pytest.fixture
async def fakes():
    async with open_fake_anthropic(api_key="k-a") as anth, open_fake_openai(api_key="k-o") as oai:
        yield anth, oai


async def start(nursery, paths: Paths, env: dict) -> Daemon:
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001), env=env)
    await nursery.start(daemon.run)
    return daemon


async def run_turn(client, session_id, text, **kw):
    events = []
    async with client.turn(session_id, text, **kw) as turn:
        async for e in turn:
            events.append(e)
    return events


async def test_ask_role_end_to_end_runs_on_the_roles_model_and_trace_shows_the_role(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths, KEYS)
    oai.script(Answer(text=("mapped",)))
    out = await cli(paths, "ask", "--json", "--role", "capable-implementer", "--tier", "trivial", "map the repo")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    route = lines[0]
    assert route["type"] == "route.decided" and route["chosen_model"] == "openai:gpt-5.4-mini"
    winner = route["chain"][route["winner_index"]]
    assert (winner["role"], winner["tier"]) == ("capable-implementer", "TRIVIAL")
    assert lines[-1]["type"] == "turn.completed" and not anth.requests
    trace = await cli(paths, "trace", route["turn_id"])
    assert trace.returncode == 0, trace.stderr
    assert "Role: capable-implementer · tier TRIVIAL" in trace.stdout
    assert "ROLE" in trace.stdout and "openai:gpt-5.4-mini" in trace.stdout
    daemon.request_stop("test over")


async def test_a_planner_delegating_above_its_own_cost_tier_is_refused(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url, ROLES_TEXT.replace("agents:\n", DEEP_RESEARCH, 1))
    daemon = await start(nursery, paths, KEYS)
    calls = (ToolCall("delegate", {"tier": "deep", "task": "think hard", "context": {"mode": "minimal"}}, id="tu_1"),
             ToolCall("delegate", {"role": "deep-research", "task": "research", "context": {"mode": "minimal"}},
                      id="tu_2"),
             ToolCall("delegate", {"role": "capable-implementer", "complexity": "TRIVIAL", "task": "rename",
                                   "context": {"mode": "minimal"}}, id="tu_3"))
    anth.script(Answer(text=(), tool_calls=calls), Answer(text=("done",)))
    oai.script(Answer(text=("renamed",)))
    async with open_client(paths.endpoint) as client:
        info = await client.open_session()
        events = await run_turn(client, info.session_id, "plan and delegate")
    assert isinstance(events[-1], ev.TurnCompleted) and events[-1].model == "anthropic:claude-sonnet-4-6"
    failed = {e.tool_use_id: e for e in events if isinstance(e, ev.DelegateFailed)}
    assert failed["tu_1"].error == failed["tu_2"].error == "tier_floor"
    assert "tier floor" in failed["tu_1"].output and "anthropic:claude-sonnet-4-6 (balanced)" in failed["tu_1"].output
    done = [e for e in events if isinstance(e, ev.DelegateCompleted)]
    assert [e.tool_use_id for e in done] == ["tu_3"] and done[0].model == "openai:gpt-5.4-mini"
    results = {b["tool_use_id"]: b for b in anth.requests[-1].json["messages"][-1]["content"]
               if b.get("type") == "tool_result"}
    assert results["tu_1"].get("is_error") is True and "tier floor" in results["tu_1"]["content"]
    assert len(anth.requests) == 2 and len(oai.requests) == 1    # no worker ran on a deep model
    daemon.request_stop("test over")


async def test_all_configured_models_down_ends_in_waiting_approval_visible_in_status(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths, {})      # no provider key: every model is not_configured
    out = await cli(paths, "ask", "--role", "capable-reviewer", "--tier", "MEDIUM", "review it")
    assert out.returncode == 1
    err = [line for line in out.stderr.splitlines() if line.startswith("orchestrator:")]
    assert len(err) == 1 and "Waiting for approval" in err[0] and err[0].endswith("[waiting_approval]")
    status = await cli(paths, "status", "--json")
    waiting = json.loads(status.stdout)["waiting_approval"]
    assert [(w["role"], w["tier"]) for w in waiting] == [("capable-reviewer", "MEDIUM")]
    assert "waiting approval: role capable-reviewer tier MEDIUM" in (await cli(paths, "status")).stdout
    recorded = daemon.store.events(type_="role.waiting_approval")
    assert len(recorded) == 1 and not anth.requests and not oai.requests
    daemon.request_stop("test over")


async def test_an_invalid_roles_yaml_keeps_the_last_good_roles_and_shows_in_status(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths, KEYS)
    (paths.home / "roles.yaml").write_text(ROLES_TEXT.replace("cost_tier: low", "cost_tier: cheap"))
    oai.script(Answer(text=("ok",)))
    async with open_client(paths.endpoint) as client:
        info = await client.open_session()
        events = await run_turn(client, info.session_id, "map it", role="fast-readonly")
        report = await client.rules()
    assert events[-1].model == "openai:gpt-5.4-mini"        # the last-known-good roles
    assert any(isinstance(e, ev.Banner) and "roles.yaml is invalid" in e.text for e in events)
    assert any("roles.fast-readonly.cost_tier: 'cheap'" in e for e in report.errors)
    assert report.source["roles"].endswith("roles.yaml")
    invalid = daemon.store.events(type_="routing.policy_invalid")
    assert invalid and invalid[-1]["file"].endswith("roles.yaml")
    daemon.request_stop("test over")


async def test_roles_check_names_both_agents_of_a_tier_floor_violation_without_a_daemon(short_tmp):
    paths = write_home(short_tmp, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1",
                       ROLES_TEXT.replace(ORCHESTRATOR_ROW, ORCHESTRATOR_ROW.replace("high", "medium", 1)))
    out = await cli(paths, "roles", "check")
    assert out.returncode == 1
    floor = [line for line in out.stdout.splitlines() if "tier floor" in line]
    assert floor and all(line.startswith("roles.yaml:") for line in out.stdout.splitlines())
    assert any("'orchestrator'" in line and "'plan-auditor'" in line for line in floor)
    everything = await cli(paths, "check")
    assert everything.returncode == 1 and any("tier floor" in line for line in everything.stdout.splitlines())


async def test_roles_check_ok_and_resolve_as_json_and_unknown_role_is_one_line(short_tmp):
    paths = write_home(short_tmp, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    ok = await cli(paths, "roles", "check")
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok"), ok.stdout
    out = await cli(paths, "roles", "resolve", "capable-reviewer", "--tier", "SMALL", "--high-risk", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == {
        "role": "capable-reviewer", "tier": "LARGE", "model": "anthropic:claude-opus-4-8",
        "fallbacks": ["openai:gpt-5.5"], "cost_tier": "high", "effort": "high"}
    bare = json.loads((await cli(paths, "roles", "resolve", "capable-reviewer", "--json")).stdout)
    assert bare["tier"] is None and bare["model"] == "anthropic:claude-opus-4-8"
    unknown = await cli(paths, "roles", "resolve", "nope")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == [
        "orchestrator: unknown role 'nope' (roles.yaml roles: capable-implementer, capable-planner, capable-reviewer, "
        "fast-readonly, orchestration-capable, review-readonly)"]


async def test_a_roles_effort_hint_reaches_the_provider_unless_the_turn_asks_for_another(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    models = paths.home / "models.yaml"
    mini_efforts = "    aliases: [mini]\n    efforts: [low, medium]\n"
    models.write_text(models.read_text().replace("    aliases: [mini]\n", mini_efforts))
    daemon = await start(nursery, paths, KEYS)
    oai.script(Answer(text=("hinted",)), Answer(text=("asked",)))
    async with open_client(paths.endpoint) as client:
        info = await client.open_session()
        hinted = await run_turn(client, info.session_id, "map the repo", role="capable-implementer", tier="TRIVIAL")
        asked = await run_turn(client, info.session_id, "map it again", role="capable-implementer", tier="TRIVIAL",
                               effort="low")
    assert isinstance(hinted[-1], ev.TurnCompleted) and isinstance(asked[-1], ev.TurnCompleted)
    assert [r.json.get("reasoning_effort") for r in oai.requests] == ["medium", "low"]
    assert hinted[0].effort == "medium" and asked[0].effort == "low"
    daemon.request_stop("test over")


async def test_a_roles_effort_hint_the_model_does_not_declare_is_dropped_with_a_note(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths, KEYS)
    oai.script(Answer(text=("plain",)))
    async with open_client(paths.endpoint) as client:
        info = await client.open_session()
        events = await run_turn(client, info.session_id, "map the repo", role="capable-implementer", tier="TRIVIAL")
    assert isinstance(events[-1], ev.TurnCompleted)
    assert "reasoning_effort" not in oai.requests[-1].json
    assert events[0].effort is None and any("medium" in w for w in events[0].warnings), events[0].warnings
    daemon.request_stop("test over")
