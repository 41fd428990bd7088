"""Independent verification of a delegated change (sans-IO).

A result is accepted only on evidence the daemon gathered itself, never on the delegate's summary:

1. HEAD (and the checked-out branch) are what they were: the delegate owns no git;
2. the files it changed are exactly the files it reports on its last ``FILES_CHANGED=a,b`` line;
3. every one of them matches an ``allow`` glob, and none is under ``.orchestrator/`` or ``.git/``;
4. the workspace's test command, re-run by the daemon, exits 0.

The test command only runs when 1–3 hold (it costs time and runs the delegate's code).
"""
from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping

from attrs import frozen

# Markdown around the line (a bullet, `code`, **bold**) is how chatty agents print it: the same claim.
FILES_CHANGED = re.compile(r"^[\s>*_`-]*FILES_CHANGED=(.*?)[\s*_`]*$")
PROTECTED_PREFIXES = (".orchestrator/", ".git/")
CLAIM_TAIL_LINES = 20


def parse_claimed(output: str, workspace: str | None = None) -> frozenset[str] | None:
    """The files named on the last ``FILES_CHANGED=`` line among the output's last lines; None: no line.
    An absolute path inside ``workspace`` is made relative to it (agents often print absolute paths)."""
    lines = [line for line in output.splitlines() if line.strip()][-CLAIM_TAIL_LINES:]
    for line in reversed(lines):
        m = FILES_CHANGED.match(line)
        if m is not None:
            return frozenset(p for p in (normalize(part, workspace) for part in m.group(1).split(",")) if p)
    return None


def normalize(path: str, workspace: str | None = None) -> str:
    path = path.strip().strip("'\"`")
    if not path:
        return ""
    norm = posixpath.normpath(path)
    if workspace and norm.startswith(workspace.rstrip("/") + "/"):
        norm = norm[len(workspace.rstrip("/")) + 1:]
    return "" if norm == "." else norm


def glob_regex(glob: str) -> re.Pattern[str]:
    """``**`` spans folders, ``*`` and ``?`` stay within one; matched against the whole relative path."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def is_allowed(path: str, allow: Iterable[str]) -> bool:
    if path.startswith(PROTECTED_PREFIXES) or path in (".orchestrator", ".git") or path.startswith("../") \
            or posixpath.isabs(path):
        return False
    return any(glob_regex(normalize(g) or g).match(path) for g in allow)


def changed_files(dirty_before: Mapping[str, str | None], dirty_after: Iterable[str],
                  now: Mapping[str, str | None]) -> frozenset[str]:
    """What the delegate changed. ``dirty_before``: path → content digest (None: absent) of every
    file that differed from HEAD before it ran; ``dirty_after``: the paths that differ from HEAD
    after; ``now``: the current digest of each ``dirty_before`` path. A file that was dirty before
    counts when its content changed (the user's own edit touched by the delegate)."""
    fresh = {p for p in dirty_after if p not in dirty_before}
    touched = {p for p, digest in dirty_before.items() if now.get(p) != digest}
    return frozenset(fresh | touched)


@frozen
class Evidence:
    head_before: str | None
    head_after: str | None
    branch_before: str | None
    branch_after: str | None
    changed: frozenset[str]
    claimed: frozenset[str] | None
    staged: frozenset[str] = frozenset()      # the user's files whose index entry the delegate changed


@frozen
class CheckRun:
    passed: bool
    summary: str                      # "exit 0", "exit 1: <tail>", "timed out after 600s"


@frozen
class Verdict:
    accepted: bool
    reasons: tuple[str, ...]
    run_tests: bool = False           # the tree checks passed: the test command decides

    def text(self) -> str:
        return "; ".join(self.reasons)


def check_tree(evidence: Evidence, allow: Iterable[str]) -> Verdict:
    """Checks 1–3; ``run_tests`` when they all hold."""
    reasons: list[str] = []
    if evidence.head_after != evidence.head_before or evidence.branch_after != evidence.branch_before:
        reasons.append(f"it moved HEAD ({_short(evidence.head_before)} → {_short(evidence.head_after)}"
                       + (f", branch {evidence.branch_before} → {evidence.branch_after}"
                          if evidence.branch_after != evidence.branch_before else "")
                       + "): the delegate owns no git")
    if evidence.staged:
        reasons.append(f"it changed the git index for {', '.join(sorted(evidence.staged))}: the delegate owns no git")
    allow = tuple(allow)
    outside = sorted(p for p in evidence.changed if not is_allowed(p, allow))
    if outside:
        reasons.append(f"it changed files outside allow: {', '.join(outside)}")
    if evidence.claimed is None:
        reasons.append("it did not report its files (no FILES_CHANGED= line at the end of its output)")
    else:
        unreported = sorted(evidence.changed - evidence.claimed)
        untouched = sorted(evidence.claimed - evidence.changed)
        if unreported:
            reasons.append(f"it changed files it did not report: {', '.join(unreported)}")
        if untouched:
            reasons.append(f"it reported files it did not change: {', '.join(untouched)}")
    if not reasons and not evidence.changed:
        # The tests passed before it ran too: "done" with no change is its word, not evidence.
        reasons.append("it changed no files: there is nothing to accept")
    if reasons:
        return Verdict(False, tuple(reasons))
    return Verdict(False, (), run_tests=True)


def decide(evidence: Evidence, allow: Iterable[str], tests: CheckRun | None) -> Verdict:
    tree = check_tree(evidence, allow)
    if not tree.run_tests or tests is None:   # refused, or the test command decides next
        return tree
    if not tests.passed:
        return Verdict(False, (f"the test command failed: {tests.summary}",))
    return Verdict(True, (f"HEAD unchanged, {len(evidence.changed)} file(s) as reported, tests passed",))


def _short(rev: str | None) -> str:
    return rev[:10] if rev else "none"
