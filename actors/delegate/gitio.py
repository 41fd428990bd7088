"""The thin git and process IO around a delegated change: snapshot, evidence, scoped rollback.

Blocking (``subprocess.run``): callers run these in a thread. The decisions live in ``verify``.

The snapshot keeps, for every file that differs from HEAD before the delegate runs (the user's
own uncommitted edits) and for every file under ``.orchestrator/`` (git may ignore it), its
content, mode and index entry. A rollback touches only the files the delegate changed: a file
that was dirty before gets its pre-delegation content (and index entry) back, a file that was
clean gets HEAD's version, a file it created is removed. Everything else is left alone.
"""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path

from attrs import frozen

from actors.delegate.verify import changed_files

MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
MAX_PROTECTED_FILES = 1000
GIT_TIMEOUT_S = 60.0
PROTECTED_DIR = ".orchestrator"


class GitProblem(Exception):
    """The workspace cannot be protected (not a git repository, no commit, too much to snapshot)."""


@frozen
class Saved:
    """A file's state: ``data`` None means it did not exist; ``link`` for a symlink's target."""
    data: bytes | None
    mode: int = 0o644
    link: str | None = None

    def digest(self) -> str | None:
        if self.data is None and self.link is None:
            return None
        body = (b"L" + self.link.encode()) if self.link is not None else (b"F" + (self.data or b""))
        return hashlib.sha256(body).hexdigest()


@frozen
class Snapshot:
    workspace: str
    head: str
    branch: str | None                      # refs/heads/…, None when detached
    files: dict[str, Saved]                 # dirty + protected files, by repo-relative path
    index: dict[str, str]                   # path → "mode sha stage" of the index entry, if any


def _git(workspace: str, *args: str, ok: tuple[int, ...] = (0,), data: bytes | None = None) -> bytes:
    env = {**os.environ, "GIT_LITERAL_PATHSPECS": "1", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        proc = subprocess.run(["git", "-C", workspace, *args], input=data, capture_output=True, env=env,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitProblem(f"git {args[0]} failed: {exc}") from None
    if proc.returncode not in ok:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitProblem(f"git {args[0]} failed: {err[-1] if err else f'exit {proc.returncode}'}")
    return proc.stdout


def head(workspace: str) -> str | None:
    out = _git(workspace, "rev-parse", "--verify", "-q", "HEAD", ok=(0, 1)).decode().strip()
    return out or None


def branch(workspace: str) -> str | None:
    out = _git(workspace, "symbolic-ref", "-q", "HEAD", ok=(0, 1)).decode().strip()
    return out or None


def dirty_paths(workspace: str) -> set[str]:
    """Files that differ from HEAD in the index or the working tree, untracked ones included."""
    out = _git(workspace, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
    return {entry[3:].decode("utf-8", "surrogateescape") for entry in out.split(b"\0") if len(entry) > 3}


def _save(root: Path, rel: str) -> Saved:
    path = root / rel
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Saved(None)
    if stat.S_ISLNK(st.st_mode):
        return Saved(None, 0o777, os.readlink(path))
    if not stat.S_ISREG(st.st_mode):
        return Saved(None)
    return Saved(path.read_bytes(), stat.S_IMODE(st.st_mode))


def _protected(root: Path) -> list[str]:
    base = root / PROTECTED_DIR
    if not base.is_dir() or base.is_symlink():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
            if len(found) > MAX_PROTECTED_FILES:
                raise GitProblem(f"more than {MAX_PROTECTED_FILES} files under {PROTECTED_DIR}/ to protect")
    return found


def _index_entries(workspace: str, paths: Iterable[str]) -> dict[str, str]:
    paths = list(paths)
    if not paths:
        return {}
    out = _git(workspace, "ls-files", "-s", "-z", "--", *paths)
    entries = {}
    for entry in out.split(b"\0"):
        if b"\t" in entry:
            meta, name = entry.split(b"\t", 1)
            entries[name.decode("utf-8", "surrogateescape")] = meta.decode()
    return entries


def check_repository(workspace: str) -> str:
    """HEAD of the workspace's repository; GitProblem when delegation cannot work there (not a git
    repository, not its top folder, no commit yet) — checked before consent, offer and snapshot."""
    workspace = os.path.realpath(workspace)
    top = _git(workspace, "rev-parse", "--show-toplevel", ok=(0, 128)).decode().strip()
    if not top:
        raise GitProblem(f"{workspace} is not a git repository: delegation needs git to verify and roll back")
    if os.path.realpath(top) != os.path.realpath(workspace):
        raise GitProblem(f"the workspace must be the top of its git repository ({top})")
    rev = head(workspace)
    if rev is None:
        raise GitProblem("the repository has no commit yet: commit once before delegating")
    return rev


def snapshot(workspace: str) -> Snapshot:
    workspace = os.path.realpath(workspace)
    rev = check_repository(workspace)
    root = Path(workspace)
    paths = dirty_paths(workspace) | set(_protected(root))
    files = {p: _save(root, p) for p in paths}
    if sum(len(s.data or b"") for s in files.values()) > MAX_SNAPSHOT_BYTES:
        raise GitProblem("the uncommitted changes are too large to protect (over 64 MiB): commit or stash first")
    return Snapshot(workspace, rev, branch(workspace), files, _index_entries(workspace, paths))


def restore_refs(snap: Snapshot) -> None:
    """Put HEAD back where it was: the branch checked out, pointing at the old commit; index and
    working tree untouched (what the delegate changed is then a difference from HEAD, rolled back
    file by file)."""
    ws = snap.workspace
    if branch(ws) != snap.branch:
        if snap.branch is not None:
            _git(ws, "symbolic-ref", "HEAD", snap.branch)
        else:
            _git(ws, "update-ref", "--no-deref", "HEAD", snap.head)
    if head(ws) != snap.head:
        _git(ws, "update-ref", "HEAD", snap.head)


def changes(snap: Snapshot) -> frozenset[str]:
    """The files the delegate changed (relative to the snapshot)."""
    root = Path(snap.workspace)
    after = dirty_paths(snap.workspace) | set(_protected(root))
    before = {p: s.digest() for p, s in snap.files.items()}
    now = {p: _save(root, p).digest() for p in snap.files}
    return changed_files(before, after, now)


def index_changes(snap: Snapshot) -> frozenset[str]:
    """Snapshot files whose index entry differs now (e.g. a delegate's ``git commit -a`` staged the
    user's own edit: after HEAD is put back, that edit would otherwise stay staged)."""
    current = _index_entries(snap.workspace, snap.files)
    return frozenset(p for p in snap.files if current.get(p) != snap.index.get(p))


def rollback(snap: Snapshot, changed: Iterable[str]) -> list[str]:
    """Undo exactly ``changed`` (and the index entries of the user's files the delegate staged);
    returns what could not be restored (one line each)."""
    ws, root = snap.workspace, Path(snap.workspace)
    changed = set(changed)
    problems: list[str] = []
    index_lines = [f"{snap.index[p]}\t{p}" if p in snap.index else f"0 {'0' * 40}\t{p}"
                   for p in sorted(index_changes(snap) - changed)]
    at_head: list[str] = []
    for rel in sorted(changed):
        target = root / rel
        try:
            if os.path.commonpath([os.path.realpath(target.parent), os.path.realpath(root)]) != os.path.realpath(root):
                problems.append(f"{rel}: outside the workspace, left alone")
                continue
            saved = snap.files.get(rel)
            if saved is not None:
                _put(target, saved)
                entry = snap.index.get(rel)
                index_lines.append(f"{entry}\t{rel}" if entry else f"0 {'0' * 40}\t{rel}")
            elif _tracked_at(ws, snap.head, rel):
                at_head.append(rel)
            else:
                _put(target, Saved(None))
                index_lines.append(f"0 {'0' * 40}\t{rel}")
        except OSError as exc:
            problems.append(f"{rel}: {exc.strerror or exc}")
    try:
        if at_head:
            _git(ws, "checkout", snap.head, "--", *at_head)
        if index_lines:
            _git(ws, "update-index", "--index-info", data=("\n".join(index_lines) + "\n").encode())
    except GitProblem as exc:
        problems.append(str(exc))
    return problems


def _tracked_at(workspace: str, rev: str, rel: str) -> bool:
    return bool(_git(workspace, "ls-tree", "--name-only", rev, "--", rel).strip())


def _put(target: Path, saved: Saved) -> None:
    if target.is_symlink() or target.exists():
        if target.is_dir() and not target.is_symlink():
            raise IsADirectoryError(f"{target} is a directory now")
        target.unlink()
    if saved.link is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(saved.link, target)
    elif saved.data is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(saved.data)
        os.chmod(target, saved.mode)


def change_diff(snap: Snapshot, files: Iterable[str], cap: int = 200_000) -> str:
    """The delegated change as a diff against the snapshot's HEAD (new files shown whole), for review."""
    files = sorted(files)
    tracked = [f for f in files if _tracked_at(snap.workspace, snap.head, f)]
    parts = [_git(snap.workspace, "diff", snap.head, "--", *tracked).decode(errors="replace")] if tracked else []
    for rel in files:
        if rel in tracked:
            continue
        saved = _save(Path(snap.workspace), rel)
        body = (saved.data or b"").decode(errors="replace")
        parts.append(f"--- /dev/null\n+++ b/{rel}\n" + "".join(f"+{line}\n" for line in body.splitlines()))
    text = "\n".join(parts)
    return text if len(text) <= cap else text[:cap] + "\n[diff truncated]\n"

