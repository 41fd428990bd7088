"""The sans-IO cores of delegation: config, effort floor, claims, verification, breaker, escalation."""
from actors.delegate import breaker as brk
from actors.delegate.config import effort_with_floor, parse_delegate
from actors.delegate.consent import BlastRadius
from actors.delegate.verify import Evidence, CheckRun, changed_files, decide, is_allowed, parse_claimed
from actors.tools.workspace import parse_settings

ALLOW = ("src/**", "tests/*.py")


def evidence(changed=("src/a.py",), claimed=("src/a.py",), head_after="h1", branch_after="refs/heads/main"):
    return Evidence("h1", head_after, "refs/heads/main", branch_after, frozenset(changed),
                    None if claimed is None else frozenset(claimed))


def test_delegation_is_off_without_a_delegate_section_and_off_when_it_is_malformed():
    assert parse_settings("tools: {run_command: true}\n").delegate is None
    broken = parse_settings("delegate: {agent: codex, allow: []}\n")
    assert broken.delegate is None
    assert any("test_command: required" in e for e in broken.errors)
    assert any("allow: expected a non-empty list" in e for e in broken.errors)


def test_a_complete_delegate_section_parses_with_defaults():
    config, errors = parse_delegate({"agent": "codex:gpt-5.5", "test_command": "pytest -q", "allow": ["src/**"],
                                     "effort": "medium"}, "workspace.yaml")
    assert errors == ()
    assert config is not None and config.escalate_after_needs_work == 2 and config.effort == "medium"


def test_the_effort_floor_is_never_undercut():
    assert effort_with_floor("low", "medium", ("low", "medium", "high")) == ("medium", None)
    assert effort_with_floor("high", "medium", ("low", "medium", "high")) == ("high", None)
    assert effort_with_floor(None, "medium", ("low", "high")) == ("high", None)   # the next declared one up
    effort, problem = effort_with_floor(None, "high", ("low", "medium"))
    assert effort is None and "none at or above high" in problem
    assert effort_with_floor("high", "medium", ()) == (None, None)   # a model without efforts gets none


def test_the_claimed_files_come_from_the_last_files_changed_line():
    out = "working...\nFILES_CHANGED=old.py\nmore\nFILES_CHANGED= src/a.py, ./src/b.py ,\n\n"
    assert parse_claimed(out) == frozenset({"src/a.py", "src/b.py"})
    assert parse_claimed("done, trust me\n") is None
    assert parse_claimed("FILES_CHANGED=\n") == frozenset()


def test_allow_globs_and_the_protected_folders():
    assert is_allowed("src/pkg/deep/a.py", ALLOW) and is_allowed("tests/t.py", ALLOW)
    assert not is_allowed("tests/sub/t.py", ALLOW) and not is_allowed("README.md", ALLOW)
    assert not is_allowed(".orchestrator/workspace.yaml", ("**",))
    assert not is_allowed(".git/config", ("**",))


def test_a_change_exactly_as_reported_runs_the_tests_and_is_accepted_only_when_they_pass():
    assert decide(evidence(), ALLOW, None).run_tests
    assert decide(evidence(), ALLOW, CheckRun(True, "exit code: 0")).accepted
    failed = decide(evidence(), ALLOW, CheckRun(False, "exit code: 1"))
    assert not failed.accepted and "the test command failed" in failed.text()


def test_lies_about_files_are_caught_before_the_tests_run():
    unreported = decide(evidence(changed=("src/a.py", "src/b.py")), ALLOW, None)
    assert not unreported.run_tests and "did not report: src/b.py" in unreported.text()
    untouched = decide(evidence(claimed=("src/a.py", "src/ghost.py")), ALLOW, None)
    assert "reported files it did not change: src/ghost.py" in untouched.text()
    silent = decide(evidence(claimed=None), ALLOW, None)
    assert "no FILES_CHANGED= line" in silent.text()


def test_a_moved_head_or_branch_and_files_outside_allow_are_refused():
    moved = decide(evidence(head_after="h2"), ALLOW, CheckRun(True, "exit code: 0"))
    assert not moved.accepted and "moved HEAD" in moved.text()
    switched = decide(evidence(branch_after="refs/heads/other"), ALLOW, CheckRun(True, "exit code: 0"))
    assert "branch refs/heads/main → refs/heads/other" in switched.text()
    outside = decide(evidence(changed=("README.md",), claimed=("README.md",)), ALLOW, None)
    assert "outside allow: README.md" in outside.text()


def test_changed_files_count_a_dirty_file_only_when_its_content_changed():
    before = {"notes.txt": "d1", "src/mine.py": "d2", "gone.txt": None}
    after = {"notes.txt", "src/mine.py", "src/new.py"}
    now = {"notes.txt": "d1", "src/mine.py": "d3", "gone.txt": None}
    assert changed_files(before, after, now) == frozenset({"src/mine.py", "src/new.py"})


def test_the_breaker_opens_on_a_cli_failure_or_the_third_task_failure_and_a_success_resets_the_count():
    state = brk.on_cli_failure(brk.BreakerState(), "not found")
    assert state.is_open and "not found" in state.open_reason
    s = brk.BreakerState()
    s = brk.on_task_failure(s, "lied")
    s = brk.on_task_failure(s, "lied")
    s = brk.on_success(s)
    assert s == brk.BreakerState()
    for _ in range(2):
        s = brk.on_task_failure(s, "tests")
    assert not s.is_open
    s = brk.on_task_failure(s, "tests")
    assert s.is_open and "3 delegated tasks in a row" in s.open_reason
    assert brk.on_success(s).is_open   # open stays open for the session


def test_a_task_escalates_after_the_configured_needs_work_count_and_at_once_on_major_rethink():
    t = brk.on_review(brk.TaskState(), "NEEDS_WORK", 2)
    assert t.needs_work == 1 and t.escalated is None
    assert brk.on_review(t, "SHIP", 2) == t
    t = brk.on_review(t, "NEEDS_WORK", 2)
    assert t.escalated == "its review came back NEEDS_WORK 2 times"
    assert brk.on_review(brk.TaskState(), "MAJOR_RETHINK", 2).escalated


def test_consent_binds_to_the_exact_blast_radius():
    a = BlastRadius("agent:coder", ("codex", "exec"), "/ws", ("src/**",), "pytest")
    wider = BlastRadius("agent:coder", ("codex", "exec"), "/ws", ("**",), "pytest")
    assert a.fingerprint() == BlastRadius(*attrs_tuple(a)).fingerprint()
    assert a.fingerprint() != wider.fingerprint()


def attrs_tuple(r: BlastRadius) -> tuple:
    return (r.agent, r.command, r.directory, r.allow, r.test_command)


def test_the_delegation_decisions_import_no_io_library():
    from pathlib import Path

    from tests.test_layering import IO_MODULES, ROOT, imported_top_levels

    cores = [Path(ROOT, "actors", "delegate", f"{name}.py") for name in ("config", "consent", "verify", "breaker")]
    assert {str(p.name): imported_top_levels(p) & IO_MODULES for p in cores} == {p.name: set() for p in cores}
