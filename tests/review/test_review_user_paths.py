"""`orchestrator review` as a new user drives it: what it says when something goes wrong."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from orchestrator.review_git import GitError, workspace_change
from tests.e2e.conftest import write_demo_home
from tests.e2e.test_cli_process import running_daemon
from tests.fakes import Answer

from .conftest import git, make_repo


def test_an_unknown_base_in_a_repository_with_commits_does_not_blame_a_missing_head(short_tmp):
    repo = make_repo(short_tmp)
    with pytest.raises(GitError) as raised:
        workspace_change(str(repo), "HEAD~1")
    assert "unknown base revision 'HEAD~1'" in str(raised.value)
    assert "without commits" not in str(raised.value)


def test_a_repository_without_commits_says_so(short_tmp):
    repo = short_tmp / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    with pytest.raises(GitError, match="has no commits yet"):
        workspace_change(str(repo))


async def test_an_unparseable_answer_still_shows_the_reviewer_pick_and_what_it_said(stack):
    repo = make_repo(stack.root)
    stack.anth.script(Answer(text=("Looks great to me!",)))
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--writer", "sonnet",
                                     "--backend", "anthropic:claude-opus-4-8")
    assert code == 1 and out == ""
    assert "same-family review: writer anthropic:claude-sonnet-4-6" in err      # the pick, though it failed
    assert "no 'VERDICT: SHIP|NEEDS_WORK|MAJOR_RETHINK' line" in err and "Looks great to me!" in err
    assert "Traceback" not in err


SLOW_REVIEWER = """import os, sys, time
sys.stdin.read()
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(120)
print("VERDICT: SHIP")
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_during_a_review_cancels_the_review_turn_and_exits_130(short_tmp):
    """The reviewer (a command-line agent) must not run on, and bill, for a client that is gone."""
    home = short_tmp / "home"
    write_demo_home(home)
    script, marker = short_tmp / "slow.py", short_tmp / "reviewer.pid"
    script.write_text(SLOW_REVIEWER)
    models = home / "models.yaml"
    slow_model = f'  "slowcli:r":\n    family: other\n    command: ["{sys.executable}", "{script}", "{marker}"]\n'
    models.write_text(models.read_text().replace("providers:\n", "providers:\n  slowcli: {kind: cli}\n", 1)
                      + slow_model)
    env = dict(os.environ, ORCHESTRATOR_HOME=str(home), ORCHESTRATOR_STATE=str(short_tmp / "state"),
               ORCHESTRATOR_ENDPOINT=f"ipc://{short_tmp}/d.sock")
    env.pop("ORCHESTRATOR_REVIEW_BACKEND", None)
    repo = make_repo(short_tmp)
    with running_daemon(env):
        review = subprocess.Popen([sys.executable, "-m", "orchestrator", "review", "--workspace", str(repo),
                                   "--backend", "slowcli:r", "--writer", "demo:steady"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()):      # the reviewer runs
            assert review.poll() is None and time.monotonic() < deadline, review.communicate()
            time.sleep(0.05)
        pid = int(marker.read_text())
        review.send_signal(signal.SIGINT)
        _, err = review.communicate(timeout=60)
        assert review.returncode == 130, err
        assert "cancelled" in err and "Traceback" not in err
        while _alive(pid):                                        # the daemon stopped the reviewer
            assert time.monotonic() < deadline, "the review turn ran on after Ctrl-C"
            time.sleep(0.05)


def test_a_misspelt_effort_on_a_registered_model_is_refused_not_glued_onto_the_model_name():
    """`codex:gpt-5.5:hihg` meant gpt-5.5 at some effort: accepting model 'gpt-5.5:hihg' with a
    warning only fails later, at review time, with "not registered"."""
    from actors.review.spec import parse_spec

    from .registry_fixture import registry

    reg = registry()
    parsed = parse_spec("codex:gpt-5.5:hihg", reg)
    assert not parsed.ok
    assert parsed.errors[0] == ("review spec 'codex:gpt-5.5:hihg': 'hihg' is not an effort codex:gpt-5.5 accepts "
                                "(low, medium, high, xhigh)")
    assert parse_spec("local:llama3:8b", reg).ok                       # ':' inside a model name still works
    assert parse_spec("openai:gpt-9:hihg", reg).ok                     # an unknown model: accepted, warned


def test_an_empty_diff_or_backend_none_needs_no_daemon(short_tmp, monkeypatch, capsys):
    """Nothing to review is SHIP without a turn: a CI gate must not fail on a daemon it never needed."""
    import json

    from orchestrator.cli import main

    from .registry_fixture import MODELS

    home = short_tmp / "home"
    home.mkdir()
    (home / "models.yaml").write_text(MODELS)
    (home / "routing.yaml").write_text("schema_version: 1\nglobal_default: anthropic:claude-sonnet-4-6\n")
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(home))
    monkeypatch.setenv("ORCHESTRATOR_STATE", str(short_tmp / "state"))
    monkeypatch.setenv("ORCHESTRATOR_ENDPOINT", f"ipc://{short_tmp}/nobody.sock")
    monkeypatch.delenv("ORCHESTRATOR_REVIEW_BACKEND", raising=False)
    repo = make_repo(short_tmp)
    assert main(["review", "--workspace", str(repo), "--backend", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "SHIP"
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "second")
    assert main(["review", "--workspace", str(repo), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"verdict": "SHIP", "model": None, "findings": [], "turn_id": None}
    assert "empty diff" in captured.err


def test_an_empty_backend_flag_is_a_usage_error_not_a_silent_fall_through(short_tmp, monkeypatch, capsys):
    """`--backend "$UNSET_VAR"` must not quietly review on the default model."""
    from orchestrator.cli import main

    from .registry_fixture import MODELS

    home = short_tmp / "home"
    home.mkdir()
    (home / "models.yaml").write_text(MODELS)
    (home / "routing.yaml").write_text("schema_version: 1\nglobal_default: anthropic:claude-sonnet-4-6\n")
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(home))
    monkeypatch.delenv("ORCHESTRATOR_REVIEW_BACKEND", raising=False)
    for argv in (["review", "backend", "--backend", " "], ["review", "--backend", ""]):
        assert main([*argv, "--workspace", str(short_tmp)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--backend: empty review spec" in err


async def test_a_fall_through_from_an_unavailable_reviewer_is_said_even_when_the_answer_is_unparseable(stack):
    """The user must learn that another model answered before reading why its answer failed."""
    from tests.fakes import Fail

    repo = make_repo(stack.root)
    stack.oai.script(*[Fail(500, "server_error")] * 10)
    code, _, err = await stack.cli("review", "--workspace", str(repo), "--backend", "openai:gpt-5.4")
    assert code == 1 and "failed" in err                          # gpt-5.4 is now marked unavailable
    stack.anth.script(Answer(text=("Looks fine.",)))
    code, out, err = await stack.cli("review", "--workspace", str(repo), "--backend", "openai:gpt-5.4")
    assert code == 1 and out == ""
    assert "reviewer openai:gpt-5.4 was unavailable; anthropic:claude-sonnet-4-6 reviewed instead" in err
    assert "no 'VERDICT: SHIP|NEEDS_WORK|MAJOR_RETHINK' line" in err


async def test_reviewing_a_subfolder_still_knows_the_writer_of_the_enclosing_workspace(stack):
    """`cd src; orchestrator review` after turns in the project root must not lose the writer —
    without it the default reviewer may be the writer's own family."""
    from .test_review_cli import VERDICT, write_in

    repo = make_repo(stack.root)
    (repo / "pkg").mkdir()
    (repo / "pkg" / "mod.py").write_text("X = 1\n")
    stack.anth.script(Answer(text=("written",)))
    await write_in(stack, repo)                                   # the writer: anthropic, at the root
    stack.oai.script(Answer(text=VERDICT))
    code, out, err = await stack.cli("review", "--workspace", str(repo / "pkg"), "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == "openai:gpt-5.4"
    assert "writer anthropic:claude-sonnet-4-6" in err


async def test_an_unknown_writer_is_said_so_the_user_knows_nothing_was_kept_apart(stack):
    repo = make_repo(stack.root)
    stack.anth.script(Answer(text=("VERDICT: SHIP",)))
    code, _, err = await stack.cli("review", "--workspace", str(repo), "--json")
    assert code == 0, err
    assert "writer unknown" in err and "--writer" in err
