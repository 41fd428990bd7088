"""`orchestrator delegate show|consent` on workspaces delegation cannot work in, and on a
workspace.yaml that is not even readable YAML: the user learns why at consent time, in one line."""
from __future__ import annotations

import json
import shutil

from tests.fakes import Answer

from .conftest import delegate_call, git, tool_result


async def test_consent_is_refused_where_delegation_cannot_work_and_show_says_why(stack):
    nogit = stack.root / "nogit"
    (nogit / ".orchestrator").mkdir(parents=True)
    shutil.copy(stack.ws / ".orchestrator" / "workspace.yaml", nogit / ".orchestrator" / "workspace.yaml")
    nocommit = stack.root / "nocommit"
    shutil.copytree(nogit, nocommit)
    git(nocommit, "init", "-q")
    sub = stack.ws / "sub"
    shutil.copytree(nogit, sub)
    cases = {nogit: "is not a git repository", nocommit: "has no commit yet",
             sub: "must be the top of its git repository"}
    for where, why in cases.items():
        stack.ws, ws = where, stack.ws
        try:
            refused = stack.consent("--yes")
            assert refused.returncode == 1 and why in refused.stderr, (where, refused.stderr)
            assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
            shown = stack.cli("show", "--json")
            assert shown.returncode == 0, shown.stderr
            data = json.loads(shown.stdout)
            assert data["consent"] == "missing" and why in data["repository"], data
            assert why in stack.cli("show").stdout
        finally:
            stack.ws = ws
    assert json.loads(stack.cli("show", "--json").stdout)["repository"] == "ok"


async def test_a_consented_workspace_that_stopped_being_a_repository_is_not_offered_the_tool(stack):
    assert stack.consent("--yes").returncode == 0
    (stack.ws / ".git").rename(stack.root / "git-away")
    before = stack.tree()
    _, events = await stack.turn(None, delegate_call(), Answer(text=("myself",)))
    tools = [t["function"]["name"] for t in stack.fake.requests[0].json.get("tools", [])]
    assert "delegate_code" not in tools
    result = tool_result(events)
    assert result.is_error and "is not a git repository" in result.content
    assert stack.runs() == [] and stack.tree() == before


async def test_show_and_consent_report_a_workspace_yaml_that_is_not_valid_yaml(stack):
    settings = stack.ws / ".orchestrator" / "workspace.yaml"
    settings.write_text(settings.read_text() + "commands: [unclosed\n")
    for args in (("show",), ("consent", "--yes")):
        out = stack.cli(*args)
        assert out.returncode == 1, out
        assert "invalid YAML" in out.stderr and "no delegate: section" not in out.stderr, out.stderr


async def test_every_delegate_command_answers_json_with_json(stack):
    for args, workspace in ((("show", "--json"), True), (("consent", "--yes", "--json"), True),
                            (("revoke", "--json"), True), (("reset", "--session", "s_x", "--json"), False)):
        out = stack.cli(*args, workspace=workspace)
        assert out.returncode == 0, (args, out.stderr)
        assert isinstance(json.loads(out.stdout), dict), out.stdout
    assert json.loads(stack.cli("reset", "--session", "s_x", "--json", workspace=False).stdout) == {
        "session": "s_x", "breaker": "closed"}


async def test_delegate_commands_with_stdout_closed_do_their_work_without_a_traceback(stack):
    import functools
    import subprocess
    import sys

    import trio
    for args in (f"delegate consent --yes --workspace {stack.ws}", f"delegate show --workspace {stack.ws}",
                 "delegate reset --session s_x"):
        argv = ["sh", "-c", f"'{sys.executable}' -m orchestrator {args} >&-"]
        out = await trio.to_thread.run_sync(functools.partial(
            subprocess.run, argv, env=stack.env, capture_output=True, text=True, stdin=subprocess.DEVNULL))
        assert "Traceback" not in out.stderr and out.returncode == 0, (args, out.stderr)
    assert json.loads(stack.cli("show", "--json").stdout)["consent"] == "granted"


async def test_consent_json_on_a_terminal_keeps_the_question_off_stdout(stack):
    import functools
    import os
    import pty
    import subprocess
    import sys

    import trio
    master, slave = pty.openpty()
    try:
        os.write(master, b"y\n")
        out = await trio.to_thread.run_sync(functools.partial(
            subprocess.run, [sys.executable, "-m", "orchestrator", "delegate", "consent", "--json", "--workspace",
                             str(stack.ws)], env=stack.env, stdin=slave, capture_output=True, text=True, timeout=60))
    finally:
        os.close(slave)
        os.close(master)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["consented"] is True
    assert "[y/N]" in out.stderr


async def test_an_allow_entry_that_names_a_folder_is_refused_with_the_glob_to_write(stack):
    settings = stack.ws / ".orchestrator" / "workspace.yaml"
    for entry in ('"src/"', '"src"'):
        settings.write_text(settings.read_text().replace('["src/**"]', f"[{entry}]"))
        for args in (("show",), ("consent", "--yes")):
            out = stack.cli(*args)
            assert out.returncode == 1 and "write 'src/**'" in out.stderr, (entry, args, out.stderr)
        settings.write_text(settings.read_text().replace(f"[{entry}]", '["src/**"]'))
    assert stack.cli("consent", "--yes").returncode == 0


async def test_show_says_who_reviews_and_why_a_review_spec_cannot_run(stack):
    settings = stack.ws / ".orchestrator" / "workspace.yaml"
    assert json.loads(stack.cli("show", "--json").stdout)["review"].startswith("none")
    settings.write_text(settings.read_text() + '  review: "loc:reviewer"\n')
    assert json.loads(stack.cli("show", "--json").stdout)["review"].startswith("loc:reviewer")
    settings.write_text(settings.read_text().replace('"loc:reviewer"', '"nosuch:model"'))
    shown = stack.cli("show")
    assert shown.returncode == 0 and "reviewed by:  cannot run:" in shown.stdout, shown.stdout
