"""Turns that depend on their workspace: cli agents' working directory, workers' instructions,
workspace-scoped rules, skills (issue 10 item 5b, 5c, 5d, 5f)."""
import json
import os
import subprocess
import sys


from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from tests.fakes import Answer, ToolCall, open_fake_openai

from .conftest import run_turn, write_demo_home
from .test_cli_process import start_daemon, stop_daemon


async def start(nursery, short_tmp, models: str, routing: str) -> Daemon:
    home = short_tmp / "home"
    home.mkdir(exist_ok=True)
    (home / "models.yaml").write_text(models)
    (home / "routing.yaml").write_text(routing)
    daemon = Daemon(Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock"), DaemonSettings(shutdown_grace_s=1.0))
    await nursery.start(daemon.run)
    return daemon


# --- 5b: a cli agent works in the turn's workspace ------------------------------------------------

async def test_a_cli_model_runs_in_the_turns_workspace(nursery, short_tmp):
    models = """
providers:
  agent: {kind: cli}
models:
  "agent:pwd": {tier: balanced, command: ["/bin/sh", "-c", "cat > /dev/null; pwd"]}
"""
    daemon = await start(nursery, short_tmp, models, "schema_version: 1\nglobal_default: agent:pwd\n")
    ws = short_tmp / "ws"
    ws.mkdir()
    try:
        async with open_client(daemon.paths.endpoint) as client:
            info = await client.open_session(workspace=str(ws))
            _, events = await run_turn(client, info.session_id, "where are you?")
    finally:
        daemon.request_stop("test over")
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]
    text = "".join(e.text for e in events if isinstance(e, ev.TextDelta))
    assert text.strip() == str(ws.resolve()) and str(ws.resolve()) != os.getcwd()


# --- 5c: workers get the instruction files too ----------------------------------------------------

async def test_a_delegated_worker_gets_the_workspace_instructions_in_its_system_prompt(nursery, short_tmp):
    async with open_fake_openai(api_key=None) as fake:
        models = f"""
providers:
  loc: {{kind: openai_compatible, base_url: "{fake.base_url}", api_key_env: null}}
models:
  "loc:planner": {{tier: balanced, can_delegate: true}}
  "loc:worker": {{tier: fast}}
"""
        routing = ("schema_version: 1\nglobal_default: loc:planner\n"
                   "tiers: {fast: loc:worker, balanced: loc:planner, deep: loc:planner}\n")
        daemon = await start(nursery, short_tmp, models, routing)
        ws = short_tmp / "ws"
        (ws / ".orchestrator").mkdir(parents=True)
        (ws / "AGENTS.md").write_text("Never touch the vendor/ folder.\n")
        (ws / ".orchestrator" / "MEMORY.md").write_text("# Memory\n\n- CI runs on the blue runners.\n")
        fake.script(
            Answer(text=(), tool_calls=(ToolCall("delegate", {"tier": "fast", "task": "summarise README",
                                                              "context": {"mode": "minimal"}}),)),
            Answer(text=("a summary",)),
            Answer(text=("done",)),
        )
        try:
            async with open_client(daemon.paths.endpoint) as client:
                info = await client.open_session(workspace=str(ws))
                _, events = await run_turn(client, info.session_id, "summarise the readme")
        finally:
            daemon.request_stop("test over")
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]
    planner_system, worker_system = (fake.requests[i].json["messages"][0]["content"] for i in (0, 1))
    assert "You are a sub-agent" in worker_system
    for system in (planner_system, worker_system):
        assert "Never touch the vendor/ folder." in system and "CI runs on the blue runners." in system


# --- 5d: rules show --workspace -------------------------------------------------------------------

ROUTING = """\
schema_version: 1
global_default: demo:steady
rules:
  - name: global-rule
    when: {message_matches: "^/g"}
    use: demo:swift
workspaces:
  "WS_A":
    rules:
      - name: a-rule
        when: {message_matches: "^/a"}
        use: demo:sage
  "WS_B":
    rules:
      - name: b-rule
        when: {message_matches: "^/b"}
        use: demo:sage
"""


def routing_for(short_tmp):
    a, b = short_tmp / "proj-a", short_tmp / "proj-b"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    return a, b, ROUTING.replace("WS_A", str(a)).replace("WS_B", str(b))


async def test_rules_show_for_a_workspace_lists_its_rules_then_the_global_ones(nursery, short_tmp):
    write_demo_home(short_tmp / "home")
    a, b, routing = routing_for(short_tmp)
    models = (short_tmp / "home" / "models.yaml").read_text()
    daemon = await start(nursery, short_tmp, models, routing)
    try:
        async with open_client(daemon.paths.endpoint) as client:
            everything = await client.rules()
            in_a = await client.rules(str(a / "sub"))
            elsewhere = await client.rules(str(short_tmp))
    finally:
        daemon.request_stop("test over")
    assert [r["name"] for r in everything.rules] == ["global-rule", "a-rule", "b-rule"]
    assert [r["name"] for r in in_a.rules] == ["a-rule", "global-rule"]
    assert [r["name"] for r in elsewhere.rules] == ["global-rule"]


def test_rules_show_workspace_accepts_a_path_relative_to_the_callers_directory(env, short_tmp):
    a, _, routing = routing_for(short_tmp)
    (short_tmp / "home" / "routing.yaml").write_text(routing)
    proc = start_daemon(env)
    try:
        out = subprocess.run([sys.executable, "-m", "orchestrator", "rules", "show", "--json", "--workspace", "sub"],
                             env=env, cwd=a, capture_output=True, text=True, timeout=60)
    finally:
        assert stop_daemon(proc) == 0
    assert out.returncode == 0, out.stderr
    assert [r["name"] for r in json.loads(out.stdout)["rules"]] == ["a-rule", "global-rule"]


# --- 5f: the skill index -------------------------------------------------------------------------

SKILL_ROUTING = """\
schema_version: 1
global_default: demo:steady
rules:
  - name: releases
    when: {skills_matching_message_includes: release-checklist}
    use: demo:sage
"""


async def test_a_new_skill_file_is_seen_by_the_next_turn(nursery, short_tmp):
    write_demo_home(short_tmp / "home")
    models = (short_tmp / "home" / "models.yaml").read_text()
    daemon = await start(nursery, short_tmp, models, SKILL_ROUTING)
    ws = short_tmp / "ws"
    (ws / "skills").mkdir(parents=True)
    try:
        async with open_client(daemon.paths.endpoint) as client:
            info = await client.open_session(workspace=str(ws))
            _, first = await run_turn(client, info.session_id, "cut the release build")
            (ws / "skills" / "release-checklist.md").write_text(
                "---\ndescription: Cut the release build and tag it\n---\nSteps...\n")
            _, second = await run_turn(client, info.session_id, "cut the release build")
    finally:
        daemon.request_stop("test over")
    assert first[-1].model == "demo:steady"
    assert second[-1].model == "demo:sage"


async def test_no_skill_file_is_read_when_no_rule_uses_skills(nursery, short_tmp):
    write_demo_home(short_tmp / "home")
    models = (short_tmp / "home" / "models.yaml").read_text()
    daemon = await start(nursery, short_tmp, models, "schema_version: 1\nglobal_default: demo:steady\n")
    ws = short_tmp / "ws"
    (ws / "skills").mkdir(parents=True)
    (ws / "skills" / "release-checklist.md").write_text("---\ndescription: Cut the release build\n---\n")
    try:
        async with open_client(daemon.paths.endpoint) as client:
            info = await client.open_session(workspace=str(ws))
            _, events = await run_turn(client, info.session_id, "cut the release build")
    finally:
        daemon.request_stop("test over")
    assert isinstance(events[-1], ev.TurnCompleted)
    assert daemon.router.skills.builds == 0
