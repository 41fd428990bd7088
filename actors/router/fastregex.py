"""Faster ``search(...) is not None`` for user regexes with top-level alternation.

CPython's ``re`` only uses its fast literal-prefix scan when the whole pattern starts with a
literal; ``^/commit|write.*commit message`` or ``(architecture|design review)`` instead try every
branch at every position (≈ 3 µs on a 90-character message versus ≈ 0.3 µs per literal branch).
Because routing only asks *whether* a pattern matches somewhere, ``A|B`` can be searched as
``A`` then ``B``: a match of the whole exists iff a match of some branch exists.

That equivalence needs branches that do not refer to each other's groups, so patterns with
backreferences or conditionals, and verbose patterns (where ``#`` starts a comment that may contain
``|``), are left whole. Leading global flags such as ``(?i)`` are copied onto every branch. The
original pattern is always compiled as well, so validation errors are reported for what the user
wrote.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable

_CROSS_REFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")


def compile_quietly(pattern: str) -> re.Pattern:
    # re warns (FutureWarning) about e.g. "possible nested set" while still accepting the pattern;
    # the daemon runs with warnings as errors in tests, and the pattern is valid today.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return re.compile(pattern)


def _structure(body: str):
    """Yield ``(index, char, depth_after)`` for each ``(``, ``)`` and ``|`` that is syntax, i.e.
    not escaped and not inside a character class."""
    depth, i, in_class, n = 0, 0, False, len(body)
    while i < n:
        c = body[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            i += 1
            if i < n and body[i] == "^":
                i += 1
            if i < n and body[i] == "]":
                i += 1            # "[]...]" and "[^]...]": the first ']' is literal
            continue
        elif c in "()|":
            depth += (c == "(") - (c == ")")
            yield i, c, depth
        i += 1


def _closing_paren(body: str) -> int:
    """Index of the ``)`` matching the ``(`` at ``body[0]``, or -1."""
    return next((i for i, c, depth in _structure(body) if c == ")" and depth == 0), -1)


def branches(pattern: str) -> list[str] | None:
    """The top-level alternatives of ``pattern``, or None when it must be searched whole."""
    if _CROSS_REFERENCE.search(pattern):
        return None
    flags = ""
    m = _GLOBAL_FLAGS.match(pattern)
    if m:
        flags = m.group(0)
        if "x" in flags:
            return None
        pattern = pattern[m.end():]
    # A pattern that is one group around everything: "(a|b)" or "(?:a|b)" — look inside.
    for opener in ("(?:", "("):
        if pattern.startswith(opener) and (opener == "(?:" or not pattern.startswith("(?")):
            if _closing_paren(pattern) == len(pattern) - 1:
                pattern = pattern[len(opener):-1]
            break
    parts: list[str] = []
    depth = start = 0
    for i, c, depth in _structure(pattern):
        if c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
    parts.append(pattern[start:])
    if len(parts) < 2 or depth != 0:
        return None
    return [flags + p for p in parts]


def split_searches(rx: re.Pattern) -> tuple[Callable, ...]:
    """Bound ``search`` methods whose "any matched" equals ``rx.search(text) is not None``."""
    parts = branches(rx.pattern) if isinstance(rx.pattern, str) else None
    if parts is not None:
        try:
            compiled = [compile_quietly(p) for p in parts]
        except (re.error, RecursionError, OverflowError, ValueError):
            compiled = []
        # A branch that compiles to different flags than the whole was parsed differently: do not guess.
        if len(compiled) >= 2 and all(c.flags == rx.flags for c in compiled):
            return tuple(c.search for c in compiled)
    return (rx.search,)


def searcher(rx: re.Pattern) -> Callable[[str], bool]:
    """``text -> bool`` equivalent to ``rx.search(text) is not None``, split when that is faster."""
    searches = split_searches(rx)
    if len(searches) == 1:
        (a,) = searches
        return lambda text: a(text) is not None
    if len(searches) == 2:
        a, b = searches
        return lambda text: a(text) is not None or b(text) is not None

    def test(text: str) -> bool:
        for s in searches:
            if s(text) is not None:
                return True
        return False

    return test
