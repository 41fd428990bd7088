"""``orchestrator review`` end to end: a real git diff, a daemon on fake providers, the verdict."""
import json

import pytest

from protocol import events as ev
from tests.fakes import Answer

from .conftest import git, make_repo

VERDICT = ("FINDINGS:\n", "- medium | calc.py:2 | max(len(xs), 1) hides the empty-input bug; raise instead\n",
           "- low | new_module.py | unused constant\n", "VERDICT: NEEDS_WORK\n")


async def write_in(stack, repo, alias="sonnet"):
    """One turn in the workspace: its model is the writer."""
    info = await stack.client.open_session(workspace=str(repo))
    async with stack.client.turn(info.session_id, f"@{alias} write the code") as turn:
        async for _ in turn:
            pass
    return info.session_id


async def test_review_of_a_real_diff_runs_on_the_other_family_and_prints_the_verdict(stack):
    repo = make_repo(stack.root)
    stack.anth.script(Answer(text=("written",)))
    await write_in(stack, repo)                                  # the writer: anthropic
    stack.oai.script(Answer(text=VERDICT))
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"verdict", "model", "findings", "turn_id"}
    assert result["verdict"] == "NEEDS_WORK" and result["model"] == "openai:gpt-5.4"
    assert result["findings"][0] == {"severity": "medium", "file": "calc.py", "line": 2,
                                     "text": "max(len(xs), 1) hides the empty-input bug; raise instead"}
    assert len(result["findings"]) == 2
    # The diff went to the reviewer: the modified line, the untracked file, not the ignored one.
    sent = stack.oai.bodies[-1]["messages"][-1]["content"]
    assert "+    return sum(xs) / max(len(xs), 1)" in sent and "+VALUE = 42" in sent
    assert "debug.log" not in sent and "VERDICT: <SHIP|NEEDS_WORK|MAJOR_RETHINK>" in sent
    assert len(stack.anth.bodies) == 1                            # the writer's family never reviewed
    assert "is the writer's family (anthropic)" in err
    # Routed, traced and costed like any turn; the trace says why this reviewer.
    trace = await stack.client.trace(result["turn_id"])
    assert trace.route.chosen_model == "openai:gpt-5.4"
    assert trace.route.chain[0].policy == "per_message_override"
    assert any("is the writer's family (anthropic)" in w for w in trace.route.warnings)
    cost = await stack.client.cost()
    assert any(row["model"] == "openai:gpt-5.4" for row in cost.by_model)


async def test_a_same_family_pin_runs_and_the_trace_says_so(stack):
    repo = make_repo(stack.root)
    stack.anth.script(Answer(text=("written",)), Answer(text=("FINDINGS: none\n", "VERDICT: SHIP")))
    await write_in(stack, repo)
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--backend",
                                     "anthropic:claude-opus-4-8:high", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["verdict"], result["model"], result["findings"]) == ("SHIP", "anthropic:claude-opus-4-8", [])
    assert stack.anth.bodies[-1]["model"] == "claude-opus-4-8"
    assert stack.anth.bodies[-1]["thinking"]["type"] == "enabled"          # the spec's effort, on the wire
    trace = await stack.client.trace(result["turn_id"])
    assert any(w.startswith("same-family review:") and "pinned explicitly by task" in w
               for w in trace.route.warnings)
    assert trace.route.effort == "high"


async def test_writer_flag_overrides_the_workspace_history(stack):
    repo = make_repo(stack.root)
    stack.anth.script(Answer(text=("VERDICT: SHIP",)))
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--writer", "gpt", "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == "anthropic:claude-sonnet-4-6"      # the default, not the writer's family


async def test_an_empty_diff_is_ship_without_a_turn(stack):
    repo = make_repo(stack.root)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "second")
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--json")
    assert code == 0, err
    assert json.loads(out) == {"verdict": "SHIP", "model": None, "findings": [], "turn_id": None}
    assert "empty diff" in err
    assert stack.oai.bodies == [] and stack.anth.bodies == []


async def test_an_unparseable_answer_is_a_clear_error_exit_1(stack):
    repo = make_repo(stack.root)
    stack.anth.script(Answer(text=("Looks great to me!",)))
    code, out, err = await stack.cli("review", "--workspace", str(repo))
    assert code == 1 and out == ""
    error = err.splitlines()[-1]                  # after the notes (writer unknown) on stderr
    assert error.startswith("orchestrator: no 'VERDICT: SHIP|NEEDS_WORK|MAJOR_RETHINK' line") and "Traceback" not in err


async def test_text_output_lists_the_verdict_and_findings(stack):
    repo = make_repo(stack.root)
    stack.anth.script(Answer(text=("FINDINGS:\n- high | calc.py:2 | wrong\nVERDICT: MAJOR_RETHINK",)))
    code, out, err = await stack.cli("review", "--workspace", str(repo))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("MAJOR_RETHINK  (anthropic:claude-sonnet-4-6, turn t")
    assert lines[1] == "- [high] calc.py:2 — wrong"


async def test_backend_none_skips_the_review(stack, monkeypatch):
    repo = make_repo(stack.root)
    monkeypatch.setenv("ORCHESTRATOR_REVIEW_BACKEND", "none")
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--json")
    assert code == 0 and json.loads(out)["verdict"] == "SHIP" and "review disabled" in err
    assert stack.anth.bodies == []


async def test_not_a_repository_and_an_unknown_base_are_one_line_errors(stack):
    plain = stack.root / "plain"
    plain.mkdir()
    code, _, err = await stack.cli("review", "--workspace", str(plain))
    assert code == 1 and "is not inside a git repository" in err and err.count("\n") == 1
    repo = make_repo(stack.root)
    code, _, err = await stack.cli("review", "--workspace", str(repo), "--base", "no-such-rev")
    assert code == 1 and "unknown base revision 'no-such-rev'" in err


# --- review backend -----------------------------------------------------------------------------

async def test_review_backend_prints_spec_and_source_through_each_layer(stack, monkeypatch):
    repo = make_repo(stack.root)

    async def backend(*extra):
        code, out, err = await stack.cli("review", "backend", "--workspace", str(repo), "--json", *extra)
        assert code == 0, err
        return json.loads(out)

    assert await backend() == {"spec": "anthropic:claude-sonnet-4-6", "backend": "anthropic",
                               "model": "claude-sonnet-4-6", "effort": None, "source": "default"}
    (stack.home / "daemon.yaml").write_text("review:\n  backend: openai\n")
    assert (await backend())["source"] == "config"
    (repo / ".orchestrator").mkdir()
    (repo / ".orchestrator" / "workspace.yaml").write_text("review: {backend: 'openai:gpt-5.4'}\n")
    assert (await backend())["spec"] == "openai:gpt-5.4"                      # the workspace beats daemon.yaml
    monkeypatch.setenv("ORCHESTRATOR_REVIEW_BACKEND", "anthropic:claude-opus-4-8:low")
    assert await backend() == {"spec": "anthropic:claude-opus-4-8:low", "backend": "anthropic",
                               "model": "claude-opus-4-8", "effort": "low", "source": "env"}
    assert (await backend("--backend", " openai : gpt-5.4 : xhigh "))["spec"] == "openai:gpt-5.4:xhigh"


async def test_review_backend_errors_name_their_origin(stack, monkeypatch):
    (stack.home / "daemon.yaml").write_text("log_level: info\nreview:\n  backend: OpenAI\n")
    code, out, err = await stack.cli("review", "backend")
    assert code == 1 and out == ""
    assert err.strip() == ("orchestrator: daemon.yaml:3: review.backend: review spec 'OpenAI': "
                           "unknown backend 'OpenAI' "
                           "(backend names are case-sensitive: did you mean 'openai'?)")
    monkeypatch.setenv("ORCHESTRATOR_REVIEW_BACKEND", "openai:gpt-9")
    code, out, err = await stack.cli("review", "backend", "--json")
    assert code == 0 and json.loads(out)["model"] == "gpt-9"
    assert "warning: ORCHESTRATOR_REVIEW_BACKEND: review spec 'openai:gpt-9': model 'gpt-9' is not registered" in err


def test_route_decided_warnings_survive_the_json_event_form():
    from protocol.codec import event_to_json_obj

    route = ev.RouteDecided("s", "t", "now", (), -1, None, 0.0, effort="low", warnings=("a note",))
    data = event_to_json_obj(route)
    assert data["effort"] == "low" and data["warnings"] == ["a note"]


def test_check_validates_the_daemon_yaml_review_spec_against_models_yaml(short_tmp):
    from orchestrator.check import check_home

    from .registry_fixture import MODELS

    (short_tmp / "models.yaml").write_text(MODELS)
    (short_tmp / "daemon.yaml").write_text("review:\n  backend: codex:gpt-5.5:minimal\n")
    report = check_home(short_tmp, env={})
    assert any(e.startswith("daemon.yaml:2: review.backend: review spec 'codex:gpt-5.5:minimal': effort 'minimal'")
               for e in report.errors), report.errors
    (short_tmp / "daemon.yaml").write_text("review:\n  backend: codex:gpt-5.5:xhigh\n")
    assert not any("review" in e for e in check_home(short_tmp, env={}).errors)


@pytest.mark.parametrize("openai_key", [None])    # openai is not_configured in the daemon
async def test_a_pinned_reviewer_that_cannot_run_is_refused_before_any_turn(stack):
    repo = make_repo(stack.root)
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--backend", "openai:gpt-5.4")
    assert code == 1 and out == ""
    assert err.startswith("orchestrator: reviewer openai:gpt-5.4 cannot run: ")
    assert stack.anth.bodies == [] and stack.oai.bodies == []


@pytest.mark.parametrize("openai_key", [None])
async def test_the_other_family_pick_skips_a_provider_without_key(stack):
    repo = make_repo(stack.root)
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--writer", "sonnet", "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == "codex:gpt-5.5"     # openai:gpt-5.4 ranks higher but has no key
    assert stack.anth.bodies == [] and stack.oai.bodies == []

async def test_a_command_line_reviewer_backend_gets_the_diff_model_and_effort(stack):
    repo = make_repo(stack.root)
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--writer", "sonnet",
                                     "--backend", "codex:gpt-5.5:high", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["verdict"], result["model"]) == ("SHIP", "codex:gpt-5.5")
    assert result["findings"][0]["text"] == "argv --model gpt-5.5 --config=model_reasoning_effort=high"
    assert "cross-family review: writer anthropic:claude-sonnet-4-6 (family anthropic), reviewer codex:gpt-5.5 " \
           "(family openai)" in err


async def test_trace_text_shows_the_effort_and_the_notes(stack):
    stack.oai.script(Answer(text=("ok",)))
    code, out, err = await stack.cli("ask", "--json", "--effort", "high", "@gpt", "hi")
    assert code == 0, err
    turn_id = json.loads(out.splitlines()[0])["turn_id"]
    code, out, err = await stack.cli("trace", turn_id)
    assert code == 0, err
    assert "Effort: high" in out
