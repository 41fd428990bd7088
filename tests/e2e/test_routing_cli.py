"""Routing from the command line, as a new user sees it (issue 3's acceptance path)."""
import json
from pathlib import Path

from .test_cli_process import cli, running_daemon, start_daemon, stop_daemon

ROUTING = """\
schema_version: 1
global_default: demo:steady
tiers: {fast: demo:swift, balanced: demo:steady, deep: demo:sage}
rules:
  - name: "fast for commits"
    when: {message_matches: "^/commit"}
    use: demo:swift
workspaces:
  WS:
    default: demo:sage
"""


def ask(env, *args):
    out = cli(env, "ask", "--json", *args)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    return out, lines


def trace(env, turn_id):
    out = cli(env, "trace", turn_id)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_each_policy_shows_its_chain_in_trace_and_edits_apply_without_restart(env, short_tmp):
    home = Path(env["ORCHESTRATOR_HOME"])
    ws = short_tmp / "ws"
    ws.mkdir()
    (home / "routing.yaml").write_text(ROUTING.replace("WS", str(ws)))
    proc = start_daemon(env)
    try:
        _, ev = ask(env, "--session", "s1", "@sage one question")
        assert "PER_MESSAGE_OVERRIDE    chose" in trace(env, ev[0]["turn_id"])

        assert cli(env, "model", "set", "swift", "--session", "s1").returncode == 0
        _, ev = ask(env, "--session", "s1", "refactor this")
        assert "MANUAL_STICKY           chose           demo:swift" in trace(env, ev[0]["turn_id"])
        shown = cli(env, "model", "show", "--session", "s1")
        assert "Active model: demo:swift" in shown.stdout and "MANUAL_STICKY" in shown.stdout
        assert cli(env, "model", "clear", "--session", "s1").returncode == 0

        _, ev = ask(env, "--session", "s1", "/commit tidy")
        assert 'Chose: demo:swift (rule "fast for commits")' in trace(env, ev[0]["turn_id"])

        _, ev = ask(env, "--session", "s2", "--workspace", str(ws), "plain question")
        assert "WORKSPACE_DEFAULT       chose           demo:sage" in trace(env, ev[0]["turn_id"])

        # Edit routing.yaml between turns: the next decision changes, no restart.
        (home / "routing.yaml").write_text(ROUTING.replace("WS", str(ws)).replace('"^/commit"', '"^/ship"'))
        _, ev = ask(env, "--session", "s1", "/commit tidy")
        assert ev[0]["chosen_model"] == "demo:steady"
        _, ev = ask(env, "--session", "s1", "/ship it")
        assert ev[0]["chosen_model"] == "demo:swift"

        # A broken edit keeps the old rules; rules check names the line.
        (home / "routing.yaml").write_text(ROUTING.replace("WS", str(ws)).replace("use: demo:swift", "use: demo:nope"))
        _, ev = ask(env, "--session", "s1", "/ship it")
        assert ev[0]["chosen_model"] == "demo:swift"   # the "^/ship" rules are still the active ones
        assert any(e["type"] == "banner" and "last-known-good" in e["text"] for e in ev)
        check = cli(env, "rules", "check")
        assert check.returncode == 1
        assert "routing.yaml:7: rules[0].use: model 'demo:nope' is not registered" in check.stdout

        # Hard failure: no demo model can hold this context, so the turn never starts.
        models = home / "models.yaml"
        models.write_text(models.read_text().replace("max_context_tokens: 200000", "max_context_tokens: 10"))
        (home / "routing.yaml").write_text(ROUTING.replace("WS", str(ws)))
        out, ev = ask(env, "--session", "s3", "a question that needs more than ten tokens of context window")
        assert out.returncode == 1
        assert [e["type"] for e in ev] == ["route.decided", "turn.failed"]
        assert ev[0]["winner_index"] == -1 and ev[1]["error"] == "no_model_available"
        assert ev[1]["message"].startswith("No model available for this turn.\nTried: ")
        text = trace(env, ev[0]["turn_id"])
        assert "exceeds_context_window" in text
    finally:
        assert stop_daemon(proc) == 0


def test_rules_check_works_without_a_daemon(env):
    home = Path(env["ORCHESTRATOR_HOME"])
    ok = cli(env, "rules", "check")
    assert ok.returncode == 0 and ok.stdout.strip() == "ok"
    bad = home / "bad.yaml"
    bad.write_text("schema_version: 1\nglobal_default: demo:steady\ntiers: {fast: demo:swift}\n"
                   "rules:\n  - when: {no_such_predicate: 1}\n    use: demo:swift\n")
    out = cli(env, "rules", "check", str(bad))
    assert out.returncode == 1
    lines = out.stdout.strip().splitlines()
    assert len(lines) >= 2 and all(line.startswith("bad.yaml:") for line in lines)
    assert any("tiers" in line for line in lines) and any("no_such_predicate" in line for line in lines)


def test_rules_check_warns_about_a_shadowed_rule(env):
    home = Path(env["ORCHESTRATOR_HOME"])
    f = home / "shadow.yaml"
    f.write_text("schema_version: 1\nglobal_default: demo:steady\nrules:\n"
                 "  - {name: everything, when: {}, use: demo:sage}\n"
                 "  - {name: commits, when: {message_matches: commit}, use: demo:swift}\n")
    out = cli(env, "rules", "check", str(f))
    assert out.returncode == 0 and "shadowed by" in out.stderr


def test_rules_show_json_lists_rules_with_synthetic_names(env):
    home = Path(env["ORCHESTRATOR_HOME"])
    (home / "routing.yaml").write_text("schema_version: 1\nglobal_default: demo:steady\nrules:\n"
                                       "  - {when: {message_matches: x}, use: demo:swift}\n")
    with running_daemon(env):
        out = cli(env, "rules", "show", "--json")
        data = json.loads(out.stdout)
        assert data["ok"] and data["rules"][0]["name"] == "rule_0" and data["rules"][0]["synthetic"]
        human = cli(env, "rules", "show")
        assert "rule_0 (synthetic name)" in human.stdout
