"""The scoped rollback on a real git repository: exactly what the delegate changed is undone."""
from __future__ import annotations

import subprocess
from pathlib import Path

from actors.delegate import gitio
from actors.delegate.verify import Evidence, check_tree


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, text=True).stdout


def make_repo(ws: Path) -> None:
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    git(ws, "config", "user.email", "t@example.invalid")
    git(ws, "config", "user.name", "test")
    files = {"src/a.py": "a\n", "src/b.py": "b\n", "src/gone.py": "g\n", ".gitignore": ".orchestrator/\n"}
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "initial")
    (ws / ".orchestrator").mkdir()
    (ws / ".orchestrator" / "workspace.yaml").write_text("delegate: {}\n")
    (ws / "src" / "gone.py").unlink()                     # the user deleted it (uncommitted)
    (ws / "src" / "b.py").write_text("b\nthe user's wip\n")  # the user's edit
    git(ws, "add", "src/b.py")                            # ... staged, even


def tree(ws: Path) -> dict[str, str]:
    return {p.relative_to(ws).as_posix(): p.read_text() for p in sorted(ws.rglob("*"))
            if p.is_file() and not p.relative_to(ws).as_posix().startswith(".git/")}


def test_deletions_creations_staging_and_the_protected_folder_are_all_undone(tmp_path):
    ws = tmp_path / "ws"
    make_repo(ws)
    before, status = tree(ws), git(ws, "status", "--porcelain")
    snap = gitio.snapshot(str(ws))
    # The delegate: deletes a clean tracked file, recreates the user's deleted one, edits the user's
    # staged file, adds and stages a new file, and widens its own grant in .orchestrator/.
    (ws / "src" / "a.py").unlink()
    (ws / "src" / "gone.py").write_text("back from the dead\n")
    (ws / "src" / "b.py").write_text("overwritten\n")
    (ws / "src" / "new").mkdir()
    (ws / "src" / "new" / "c.py").write_text("c\n")
    git(ws, "add", "src/new/c.py")
    (ws / ".orchestrator" / "workspace.yaml").write_text("delegate: {allow: ['**']}\n")
    changed = gitio.changes(snap)
    assert changed == {"src/a.py", "src/gone.py", "src/b.py", "src/new/c.py", ".orchestrator/workspace.yaml"}
    verdict = check_tree(Evidence(snap.head, gitio.head(str(ws)), snap.branch, gitio.branch(str(ws)), changed,
                                  frozenset(changed)), ("src/**",))
    assert "outside allow: .orchestrator/workspace.yaml" in verdict.text()
    assert gitio.rollback(snap, changed) == []
    assert tree(ws) == before
    assert git(ws, "status", "--porcelain") == status     # the user's staged edit is staged again


def test_a_file_the_delegate_did_not_touch_is_not_rolled_back_even_if_it_changed_meanwhile(tmp_path):
    ws = tmp_path / "ws"
    make_repo(ws)
    snap = gitio.snapshot(str(ws))
    (ws / "src" / "a.py").write_text("delegate\n")
    assert gitio.rollback(snap, {"src/a.py"}) == []
    assert (ws / "src" / "a.py").read_text() == "a\n"
    assert (ws / "src" / "b.py").read_text() == "b\nthe user's wip\n"


def test_a_workspace_that_is_not_a_git_repository_cannot_be_delegated_to(tmp_path):
    try:
        gitio.snapshot(str(tmp_path))
    except gitio.GitProblem as exc:
        assert "is not a git repository" in str(exc)
    else:
        raise AssertionError("no GitProblem")
