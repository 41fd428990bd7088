"""The closed predicate set of spec §5.3, compiled once at load into plain closures.

A ``when`` block compiles to a :class:`Predicate`: a structural ``node`` (used by shadow
detection and ``rules show``) plus a ``test`` closure over a :class:`TurnContext`. Regexes and
thresholds are bound into the closures at load time so a decision only pays attribute reads and
one C-level regex search per text predicate.

A mapping with several keys is an implicit ``all_of``; ``{}`` matches every turn.
"""
from __future__ import annotations

import difflib
import math
import re
from decimal import Decimal
from typing import Any
from collections.abc import Callable, Hashable

from attrs import frozen

from actors.router.context import TurnContext
from actors.router.fastregex import compile_quietly, searcher, split_searches
from actors.router.yamlpos import Problems, describe, item_line, join, key_line, plain

PREDICATE_NAMES: tuple[str, ...] = (
    "message_matches",
    "message_contains_any",
    "estimated_input_tokens_gt",
    "estimated_input_tokens_lt",
    "has_images",
    "has_tool_calls_in_history",
    "skills_matching_message_includes",
    "file_extensions_in_context",
    "workspace_path_matches",
    "time_of_day_between",
    "cost_today_exceeds_usd",
    "any_of",
    "all_of",
    "not",
)

Test = Callable[[TurnContext], bool]


@frozen
class Leaf:
    name: str
    arg: Hashable          # normalised argument: equal args mean equal behaviour


@frozen
class AllOf:
    children: tuple[Node, ...]


@frozen
class AnyOf:
    children: tuple[Node, ...]


@frozen
class Not:
    child: Node


Node = Leaf | AllOf | AnyOf | Not
MATCH_ALL = AllOf(())


@frozen(eq=False)
class Predicate:
    node: Node
    test: Test
    data: Any = None       # the ``when`` block as plain data, for ``rules show``

    def __call__(self, ctx: TurnContext) -> bool:
        """Never raises: a predicate that cannot be evaluated on a malformed context is False."""
        try:
            return bool(self.test(ctx))
        except Exception:  # noqa: BLE001 — evaluation must be total (spec §10.2 closure)
            return False


def _always(ctx: TurnContext) -> bool:
    return True


# --- leaf compilers: (value, path, line, problems) -> (arg, test) | None ---------------------------


def _regex(value, path, line, problems):
    if not isinstance(value, str):
        problems.add(line, path, f"expected a regular expression string, got {describe(value)}")
        return None
    try:
        return compile_quietly(value)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        problems.add(line, path, f"invalid regex {value!r}: {exc}")
        return None


def _strings(value, path, line, problems, what="string"):
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        problems.add(line, path, f"expected a {what} or a non-empty list of {what}s, got {describe(value)}")
        return None
    bad = [i for i, item in enumerate(items) if not isinstance(item, str) or not item]
    if bad:
        problems.add(line, path, f"item {bad[0]} must be a non-empty {what}, got {describe(items[bad[0]])}")
        return None
    return [str(item) for item in items]


def _c_message_matches(value, path, line, problems):
    rx = _regex(value, path, line, problems)
    if rx is None:
        return None
    # Closures read ctx.message_text themselves: one call per rule on the hot path, not two.
    searches = split_searches(rx)
    if len(searches) == 1:
        (a,) = searches
        return rx.pattern, lambda ctx: a(ctx.message_text) is not None
    if len(searches) == 2:
        a, b = searches
        return rx.pattern, lambda ctx: a(t := ctx.message_text) is not None or b(t) is not None

    def test(ctx: TurnContext) -> bool:
        text = ctx.message_text
        for search in searches:
            if search(text) is not None:
                return True
        return False

    return rx.pattern, test


def _c_workspace_path_matches(value, path, line, problems):
    rx = _regex(value, path, line, problems)
    if rx is None:
        return None
    found = searcher(rx)

    def test(ctx: TurnContext) -> bool:
        ws = ctx.workspace
        return ws is not None and found(ws)

    return rx.pattern, test


def _c_message_contains_any(value, path, line, problems):
    items = _strings(value, path, line, problems)
    if items is None:
        return None
    # Substring tests on the context's casefolded message (folded once per turn, on first use)
    # are ~20x cheaper than one case-insensitive regex alternation.
    needles = tuple(dict.fromkeys(s.casefold() for s in items))
    if len(needles) == 1:
        (a,) = needles
        test = lambda ctx: a in ctx.message_folded  # noqa: E731
    elif len(needles) == 2:
        a, b = needles
        test = lambda ctx: a in ctx.message_folded or b in ctx.message_folded  # noqa: E731
    else:
        def test(ctx: TurnContext) -> bool:
            text = ctx.message_folded
            for needle in needles:
                if needle in text:
                    return True
            return False
    return frozenset(needles), test


def _int_threshold(value, path, line, problems):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(line, path, f"expected a non-negative integer token count, got {describe(value)}")
        return None
    return int(value)


def _c_tokens_gt(value, path, line, problems):
    n = _int_threshold(value, path, line, problems)
    return None if n is None else (n, lambda ctx: ctx.estimated_input_tokens > n)


def _c_tokens_lt(value, path, line, problems):
    n = _int_threshold(value, path, line, problems)
    return None if n is None else (n, lambda ctx: ctx.estimated_input_tokens < n)


def _flag(attr):
    def compile_(value, path, line, problems):
        if not isinstance(value, bool):
            problems.add(line, path, f"expected true or false, got {describe(value)}")
            return None
        if value:
            return True, lambda ctx: bool(getattr(ctx, attr))
        return False, lambda ctx: not getattr(ctx, attr)

    return compile_


def _c_skills(value, path, line, problems):
    items = _strings(value, path, line, problems, "skill name")
    if items is None:
        return None
    names = frozenset(items)
    return names, lambda ctx: not names.isdisjoint(ctx.matched_skills)


def _c_extensions(value, path, line, problems):
    items = _strings(value, path, line, problems, "file extension")
    if items is None:
        return None
    # ".SQL", "sql" and ".sql" all mean the same thing; the context holds lowercase ".ext".
    exts = frozenset(s.lower() if s.startswith(".") else "." + s.lower() for s in items)
    return exts, lambda ctx: not exts.isdisjoint(ctx.file_extensions)


_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\Z")


def _c_time(value, path, line, problems):
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        problems.add(line, path, f'expected ["HH:MM", "HH:MM"], got {describe(value)}')
        return None
    minutes = []
    for text in value:
        m = _HHMM.match(text)
        if m is None:
            problems.add(line, path, f"bad time {text!r}: expected HH:MM between 00:00 and 23:59")
            return None
        minutes.append(int(m.group(1)) * 60 + int(m.group(2)))
    start, end = minutes
    if start == end:
        problems.add(line, path, f"empty window: start and end are both {value[0]}")
        return None
    # Start inclusive, end exclusive; a start after the end wraps midnight ([22:00, 06:00]).
    if start < end:
        def test(ctx: TurnContext) -> bool:
            t = ctx.now_local
            return start <= t.hour * 60 + t.minute < end
    else:
        def test(ctx: TurnContext) -> bool:
            t = ctx.now_local
            m = t.hour * 60 + t.minute
            return m >= start or m < end
    return (start, end), test


def _c_cost(value, path, line, problems):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        problems.add(line, path, f"expected a non-negative amount in USD, got {describe(value)}")
        return None
    limit = Decimal(str(plain(value)))
    return limit, lambda ctx: ctx.cost_today_usd > limit


_LEAVES = {
    "message_matches": _c_message_matches,
    "message_contains_any": _c_message_contains_any,
    "estimated_input_tokens_gt": _c_tokens_gt,
    "estimated_input_tokens_lt": _c_tokens_lt,
    "has_images": _flag("has_images"),
    "has_tool_calls_in_history": _flag("has_tool_calls_in_history"),
    "skills_matching_message_includes": _c_skills,
    "file_extensions_in_context": _c_extensions,
    "workspace_path_matches": _c_workspace_path_matches,
    "time_of_day_between": _c_time,
    "cost_today_exceeds_usd": _c_cost,
}


# --- combinators ----------------------------------------------------------------------------------


def _all(tests: list[Test]) -> Test:
    if not tests:
        return _always
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda ctx: a(ctx) and b(ctx)
    frozen_tests = tuple(tests)

    def test(ctx: TurnContext) -> bool:
        for t in frozen_tests:
            if not t(ctx):
                return False
        return True

    return test


def _any(tests: list[Test]) -> Test:
    if len(tests) == 2:
        a, b = tests
        return lambda ctx: a(ctx) or b(ctx)
    frozen_tests = tuple(tests)

    def test(ctx: TurnContext) -> bool:
        for t in frozen_tests:
            if t(ctx):
                return True
        return False

    return test


def _compile_list(name, value, path, line, problems):
    if not isinstance(value, (list, tuple)) or not value:
        problems.add(line, path, f"{name} expects a non-empty list of predicates, got {describe(value)}")
        return None
    parts = [
        _compile_mapping(item, join(path, i), item_line(value, i, line), problems) for i, item in enumerate(value)
    ]
    if any(p is None for p in parts):
        return None
    nodes = tuple(p[0] for p in parts)
    tests = [p[1] for p in parts]
    if name == "all_of":
        return AllOf(nodes), _all(tests)
    return AnyOf(nodes), _any(tests)


def _compile_one(name, value, path, line, problems):
    if name in ("any_of", "all_of"):
        return _compile_list(name, value, path, line, problems)
    if name == "not":
        inner = _compile_mapping(value, path, line, problems)
        if inner is None:
            return None
        node, t = inner
        return Not(node), lambda ctx: not t(ctx)
    compiler = _LEAVES.get(name) if isinstance(name, str) else None
    if compiler is None:
        hint = difflib.get_close_matches(str(name), PREDICATE_NAMES, n=1)
        suffix = f"; did you mean '{hint[0]}'?" if hint else f" (known: {', '.join(PREDICATE_NAMES)})"
        problems.add(line, path, f"unknown predicate '{name}'{suffix}")
        return None
    result = compiler(value, path, line, problems)
    if result is None:
        return None
    arg, t = result
    return Leaf(name, arg), t


def _compile_mapping(data, path, line, problems):
    if not isinstance(data, dict):
        problems.add(line, path, f"expected a mapping of predicates, got {describe(data)}")
        return None
    parts = [
        _compile_one(key, value, join(path, key), key_line(data, key, line), problems) for key, value in data.items()
    ]
    if any(p is None for p in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    return AllOf(tuple(p[0] for p in parts)), _all([p[1] for p in parts])


def compile_when(data: Any, *, path: str = "when", line: int = 0, problems: Problems | None = None) -> Predicate | None:
    """Compile a ``when`` block; on any error report it to ``problems`` and return None."""
    sink = problems if problems is not None else Problems("<when>")
    before = len(sink.items)
    try:
        result = _compile_mapping(data, path, line, sink)
    except RecursionError:
        sink.add(line, path, "predicate tree is nested too deeply")
        return None
    if result is None or len(sink.items) != before:
        return None
    node, t = result
    return Predicate(node=node, test=t, data=plain(data))


def budget_limits(node: Node) -> tuple[Decimal, ...]:
    """Thresholds of ``cost_today_exceeds_usd`` leaves that count *for* a match (not under ``not``)."""
    if isinstance(node, Leaf):
        limit = node.arg
        return (limit,) if node.name == "cost_today_exceeds_usd" and isinstance(limit, Decimal) else ()
    if isinstance(node, (AllOf, AnyOf)):
        return tuple(limit for child in node.children for limit in budget_limits(child))
    return ()


def leaf_names(node: Node, out: set[str]) -> set[str]:
    """Every predicate name in the tree, added to ``out``."""
    if isinstance(node, Leaf):
        out.add(node.name)
    elif isinstance(node, (AllOf, AnyOf)):
        for child in node.children:
            leaf_names(child, out)
    elif isinstance(node, Not):
        leaf_names(node.child, out)
    return out
