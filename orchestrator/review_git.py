"""The change a review looks at: ``git diff BASE`` of a workspace, untracked files included.

Untracked files are part of the change (a new module is what an agent most often writes), so each
one not ignored by ``.gitignore`` is shown as a new file (``git diff --no-index /dev/null FILE``).
The workspace may be a subfolder of its repository: the diff is limited to it. Nothing is
written — not even the index — and no repository-configured diff driver or textconv command runs.
"""
from __future__ import annotations

import os
import subprocess

from attrs import frozen

MAX_DIFF_CHARS = 1_000_000     # beyond this one review turn cannot hold it: review a narrower base
GIT_TIMEOUT_S = 60.0
_DIFF = ("diff", "--no-color", "--no-ext-diff", "--no-textconv")


class GitError(Exception):
    """The diff cannot be taken (not a repository, unknown base, git missing): one clear line."""


@frozen
class Change:
    diff: str
    base: str
    untracked: int = 0

    @property
    def empty(self) -> bool:
        return not self.diff.strip()


def _git(workspace: str, *args: str, ok_codes: tuple[int, ...] = (0,)) -> str:
    env = dict(os.environ, LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    try:
        done = subprocess.run(["git", "-C", workspace, *args], capture_output=True, env=env,
                              timeout=GIT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed (needed to take the diff)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g}s in {workspace}") from None
    if done.returncode not in ok_codes:
        first = done.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(first[0] if first else f"git {args[0]} failed with status {done.returncode}")
    return done.stdout.decode(errors="replace")


def _unknown_base(workspace: str, base: str) -> str:
    try:
        _git(workspace, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except GitError:
        return (f"unknown base revision {base!r}: the repository at {workspace} has no commits yet "
                "(commit once, then review the changes against that commit)")
    return f"unknown base revision {base!r} in {workspace} (`git log --oneline` lists the commits)"


def workspace_change(workspace: str, base: str = "HEAD") -> Change:
    try:
        _git(workspace, "rev-parse", "--show-toplevel")
    except GitError:
        raise GitError(f"{workspace} is not inside a git repository") from None
    if base.startswith("-"):
        raise GitError(f"invalid base revision {base!r}")
    try:
        _git(workspace, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except GitError:
        raise GitError(_unknown_base(workspace, base)) from None
    parts = [_git(workspace, *_DIFF, base, "--", ".")]
    size = len(parts[0])
    listed = _git(workspace, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    untracked = [name for name in listed.split("\0") if name]
    for name in untracked:
        if size > MAX_DIFF_CHARS:
            break
        # Exit 1 means "they differ", which a new file always does.
        part = _git(workspace, *_DIFF, "--no-index", "--", "/dev/null", name, ok_codes=(0, 1))
        parts.append(part)
        size += len(part)
    if size > MAX_DIFF_CHARS:
        raise GitError(f"the diff against {base} is over {MAX_DIFF_CHARS:,} characters: too large for one review "
                       "turn; review against a nearer --base")
    return Change("".join(parts), base, len(untracked))
