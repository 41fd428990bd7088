"""delegate_code end to end: a scripted session model calls the tool, a fake command-line agent
works in a temporary git repository, the daemon verifies, accepts or rolls back, and trips the breaker."""
from __future__ import annotations

import json


from actors.delegate import state
from actors.runtime.store import Store
from orchestrator.client import open_client
from protocol import events as ev
from tests.fakes import Answer

from .conftest import USER_APP, delegate_call, git, tool_result


def offered_tools(fake, i: int) -> list[str]:
    return [t["function"]["name"] for t in fake.requests[i].json.get("tools", [])]


async def test_without_consent_the_tool_is_not_offered_refuses_and_nothing_is_written(stack):
    before = stack.tree()
    _, events = await stack.turn(None, delegate_call(), Answer(text=("I'll do it myself",)))
    assert isinstance(events[-1], ev.TurnCompleted)
    assert "delegate_code" not in offered_tools(stack.fake, 0)
    result = tool_result(events)
    assert result.is_error
    assert "refused: no consent for this workspace: run `orchestrator delegate consent --workspace" in result.content
    assert stack.runs() == [] and stack.tree() == before


async def test_consent_needs_a_terminal_or_yes(stack):
    refused = stack.consent()
    assert refused.returncode == 1 and "consent needs a terminal to ask on, or --yes" in refused.stderr
    assert "command line:" in refused.stdout and str(stack.ws) in refused.stdout and "src/**" in refused.stdout
    granted = stack.consent("--yes", "--json")
    assert granted.returncode == 0, granted.stderr
    data = json.loads(granted.stdout)
    assert data["consented"] and data["radius"]["allow"] == ["src/**"]
    assert data["radius"]["command"][-1] == "--effort=medium"   # the effort floor is in the command line


async def test_a_delegate_that_succeeds_is_accepted_after_the_test_command_passes(stack):
    assert stack.consent("--yes").returncode == 0
    session, events = await stack.turn(None, delegate_call(effort="low"), Answer(text=("done",)))
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]
    assert "delegate_code" in offered_tools(stack.fake, 0)
    result = tool_result(events)
    data = json.loads(result.content)
    assert not result.is_error and data["accepted"], data
    assert data["files"] == ["src/app.py", "src/pkg/new.py"] and data["tests"] == "exit code: 0"
    run = stack.runs()[0]
    assert run["cwd"] == str(stack.ws.resolve())            # the agent runs in the workspace
    assert run["argv"] == ["--effort=medium"] and run["asked_for_files"]   # low asked, the floor applied
    assert (stack.ws / "src" / "app.py").read_text() == USER_APP + "# feature\n"
    assert (stack.ws / "src" / "pkg" / "new.py").read_text() == "NEW = 1\n"
    async with open_client(stack.daemon.paths.endpoint) as client:
        report = await client.cost(session)
    assert {(m["model"], m["role"], m["calls"]) for m in report.by_model} >= {("agent:coder", "worker", 1)}


async def test_a_delegate_that_lies_about_its_files_is_rolled_back_and_the_users_edits_survive(stack):
    data = await stack.rolled_back("lie", then=(Answer(text=("doing it myself",)),))
    assert "it changed files it did not report: src/pkg/new.py" in data["reasons"]
    assert "it reported files it did not change: src/other.py" in data["reasons"]
    assert data["tests"] is None                              # caught before the tests ran
    assert data["rolled_back"] == ["src/app.py", "src/pkg/new.py"]
    assert "implement the task yourself" in data["next"]      # the user's dirty app.py is back, new.py gone


async def test_a_delegate_that_moves_head_is_rolled_back_with_head_restored(stack):
    head = git(stack.ws, "rev-parse", "HEAD")
    data = await stack.rolled_back("commit")
    assert any("moved HEAD" in r for r in data["reasons"])
    assert git(stack.ws, "rev-parse", "HEAD") == head
    # `git commit -a` had staged the user's own edit of notes.txt: it is unstaged again, as before.
    assert git(stack.ws, "status", "--porcelain").splitlines() == [" M notes.txt", " M src/app.py", "?? scratch.txt"]


async def test_a_delegate_that_breaks_the_tests_is_rolled_back_and_the_third_failure_opens_the_breaker(stack):
    assert stack.consent("--yes").returncode == 0
    before = stack.tree()
    stack.mode("break")
    session = None
    for n in range(3):
        session, events = await stack.turn(session, delegate_call(task_id=f"T{n}", id_=f"d{n}"), Answer(text=("ok",)))
        data = json.loads(tool_result(events).content)
        assert not data["accepted"] and data["reasons"][0].startswith("the test command failed: exit code: 1")
        assert stack.tree() == before
    assert "3 delegated tasks in a row failed verification" in data["breaker"]
    # Open for the rest of the session: not offered, and a call anyway is refused without running the agent.
    calls = len(stack.runs())
    stack.mode("ok")
    _, events = await stack.turn(session, delegate_call(id_="d9"), Answer(text=("myself then",)))
    assert "delegate_code" not in offered_tools(stack.fake, len(stack.fake.requests) - 2)
    refused = tool_result(events)
    assert refused.is_error and "the circuit breaker is open for this session" in refused.content
    assert len(stack.runs()) == calls and stack.tree() == before
    # Persisted: it holds across a daemon restart within the session.
    await stack.restart()
    _, events = await stack.turn(session, delegate_call(id_="d10"), Answer(text=("still myself",)))
    assert "the circuit breaker is open for this session" in tool_result(events).content
    assert len(stack.runs()) == calls
    store = Store(stack.paths.database)
    assert state.get_breaker(store, session).failures == 3
    store.close()
    # `delegate show --session` reports it; `delegate reset` closes it.
    shown = stack.cli("show", "--json", "--session", session)
    assert json.loads(shown.stdout)["breaker"]["open"] is True
    assert stack.cli("reset", "--session", session, workspace=False).returncode == 0
    assert json.loads(stack.cli("show", "--json", "--session", session).stdout)["breaker"] == {
        "open": False, "reason": None, "failures": 0}


async def test_a_cli_failure_rolls_back_and_opens_the_breaker_at_once(stack):
    first = await stack.delegate("crash")
    data = first.data
    assert not data["accepted"] and "exited with status 3" in data["reasons"][0]
    assert data["rolled_back"] == ["src/app.py", "src/pkg/partial.py"]
    assert data["breaker"].startswith("open: the delegate's command failed")
    again = await stack.delegate(None, first.session_id, call=delegate_call(id_="d2"), then=(Answer(text=("myself",)),))
    assert "circuit breaker is open" in again.result.content


async def test_a_widened_blast_radius_needs_consent_again(stack):
    assert stack.consent("--yes").returncode == 0
    (stack.ws / ".orchestrator" / "workspace.yaml").write_text(
        (stack.ws / ".orchestrator" / "workspace.yaml").read_text().replace('["src/**"]', '["**"]'))
    _, events = await stack.turn(None, delegate_call(), Answer(text=("myself",)))
    assert "blast radius changed since consent was given" in tool_result(events).content
    assert stack.runs() == []


NEEDS_WORK = "FINDINGS:\n- medium | src/app.py:2 | the feature lacks a docstring\nVERDICT: NEEDS_WORK\n"


async def test_a_task_whose_review_comes_back_needs_work_twice_goes_back_to_the_session_model(stack):
    yaml = stack.ws / ".orchestrator" / "workspace.yaml"
    yaml.write_text(yaml.read_text() + '  review: "loc:reviewer"\n  escalate_after_needs_work: 2\n')
    assert stack.consent("--yes").returncode == 0
    session = None
    for n in (1, 2):
        session, events = await stack.turn(session, delegate_call(id_=f"d{n}"), Answer(text=(NEEDS_WORK,)),
                                           Answer(text=("noted",)))
        data = json.loads(tool_result(events).content)
        assert data["accepted"] and data["review"]["verdict"] == "NEEDS_WORK", data
        assert data["review"]["model"] == "loc:reviewer" and data["review"]["needs_work_count"] == n
        assert data["review"]["findings"][0]["file"] == "src/app.py"
    assert "task T1 is no longer delegated" in data["review"]["escalated"]
    shown = json.loads(stack.cli("show", "--json", "--session", session).stdout)
    assert shown["escalated_tasks"] == {"T1": "its review came back NEEDS_WORK 2 times"}
    # The reviewer saw the delegated diff (cross-family: the writer is agent:coder).
    review_request = stack.fake.requests[1].json["messages"][-1]["content"]
    assert "+# feature" in review_request and "+NEW = 1" in review_request
    runs = len(stack.runs())
    _, events = await stack.turn(session, delegate_call(id_="d3"), Answer(text=("doing T1 myself",)))
    refused = tool_result(events)
    assert refused.is_error and "task T1 is no longer delegated (its review came back NEEDS_WORK 2 times)" \
        in refused.content
    assert len(stack.runs()) == runs
    # Another task still goes to the delegate (escalation is per task, not the breaker).
    _, events = await stack.turn(session, delegate_call(task_id="T2", id_="d4"),
                                 Answer(text=("FINDINGS: none\nVERDICT: SHIP\n",)), Answer(text=("ok",)))
    assert json.loads(tool_result(events).content)["review"]["verdict"] == "SHIP"
    # Verification results and review verdicts are pattern-store outcome signals for the delegate model.
    store = Store(stack.paths.database)
    signals = [(o.source, o.model, o.score) for o in store.outcomes()]
    store.close()
    assert sorted(signals) == sorted([("delegate_verify", "agent:coder", 1.0)] * 3 + [
        ("delegate_review", "agent:coder", 0.5)] * 2 + [("delegate_review", "agent:coder", 1.0)])


async def test_cancelling_the_turn_while_the_agent_works_rolls_back_what_it_wrote(stack):
    before = stack.tree()

    async def cancel(turn) -> None:
        await turn.cancel()

    turn = await stack.while_the_agent_works(cancel)
    assert isinstance(turn.terminal, ev.TurnCancelled)
    assert stack.tree() == before


async def test_delegate_show_and_revoke_report_the_consent(stack):
    cli = stack.cli
    assert json.loads(cli("show", "--json").stdout)["consent"] == "missing"
    assert stack.consent("--yes").returncode == 0
    shown = cli("show").stdout
    assert "consent:      granted" in shown and "verified by:  ! grep -rq BROKEN src" in shown
    assert json.loads(cli("revoke", "--json").stdout) == {"workspace": str(stack.ws.resolve()), "revoked": True}
    assert json.loads(cli("show", "--json").stdout)["consent"] == "missing"
    _, events = await stack.turn(None, delegate_call(), Answer(text=("myself",)))
    assert "refused: no consent" in tool_result(events).content and stack.runs() == []


async def test_two_delegations_in_one_answer_run_one_after_the_other(stack):
    assert stack.consent("--yes").returncode == 0
    calls = (delegate_call("T1", "d1").tool_calls[0], delegate_call("T2", "d2").tool_calls[0])
    both = Answer(text=(), tool_calls=calls)
    _, events = await stack.turn(None, both, Answer(text=("done",)))
    results = [json.loads(e.content) for e in events if isinstance(e, ev.ToolReturned)]
    assert [r["accepted"] for r in results] == [True, True], results
    assert (stack.ws / "src" / "app.py").read_text() == USER_APP + "# feature\n" * 2


async def test_consent_on_a_terminal_asks_y_n_and_no_is_the_default(stack):
    import os
    import pty
    import subprocess
    import sys

    def answer(text: bytes) -> subprocess.CompletedProcess:
        master, slave = pty.openpty()
        try:
            os.write(master, text)   # typed ahead: the terminal buffers it until the prompt reads
            return subprocess.run([sys.executable, "-m", "orchestrator", "delegate", "consent", "--workspace",
                                   str(stack.ws)], env=stack.env, stdin=slave, capture_output=True, text=True,
                                  timeout=60)
        finally:
            os.close(slave)
            os.close(master)

    declined = answer(b"\n")
    assert declined.returncode == 1 and "no consent given: delegation stays off" in declined.stderr
    assert "[y/N]" in declined.stdout
    assert json.loads(stack.cli("show", "--json").stdout)["consent"] == "missing"
    accepted = answer(b"y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(stack.cli("show", "--json").stdout)["consent"] == "granted"
