"""Shadowed-rule warnings for ``rules check`` (spec §11 "v2 may detect…"; built now).

A later rule L is shadowed by an earlier rule E of the same list when L's ``when`` implies E's:
every turn that matches L matches E first. :func:`implies` is *sound, not complete*: it answers
True only when the implication holds for every possible turn, so a warning is always right and a
missing warning proves nothing.

One pattern is deliberately not warned about: E and L with equivalent predicates but different
models. That is the fallback idiom of spec §4.5 ("deep for architecture (sonnet fallback)"): L
only runs when E's model fails validation, which is exactly what the user wants. With the *same*
model L can never win, so that case is warned about.

Rules are compared within one list; a workspace rule list is analysed on its own because the
global rules still apply to sessions outside that workspace.
"""
from __future__ import annotations

from decimal import Decimal
from collections.abc import Sequence

from actors.router.policy import Rule
from actors.router.predicates import AllOf, AnyOf, Leaf, Node, Not, leaf_names

_MONOTONE_UP = ("estimated_input_tokens_gt", "cost_today_exceeds_usd")   # bigger threshold ⇒ smaller one


def _leaf_implies(a: Leaf, b: Leaf) -> bool:
    if a.name != b.name:
        return False
    if a.arg == b.arg:
        return True
    name, x, y = a.name, a.arg, b.arg
    # A leaf's arg type follows from its predicate name; the isinstance checks spell it out.
    if isinstance(x, (int, Decimal)) and isinstance(y, (int, Decimal)):
        if name in _MONOTONE_UP:
            return x >= y
        if name == "estimated_input_tokens_lt":
            return x <= y
        return False
    if not (isinstance(x, frozenset) and isinstance(y, frozenset)):
        return False
    if name in ("skills_matching_message_includes", "file_extensions_in_context"):
        return x <= y
    if name == "message_contains_any":
        # Both sides are casefolded and evaluation compares casefolded texts, so "message
        # contains x" and "x contains y" give "message contains y" for any script.
        return all(any(needle in text for needle in y) for text in x)
    return False


def implies(a: Node, b: Node) -> bool:
    """True only if every turn satisfying ``a`` also satisfies ``b``."""
    if a == b:
        return True
    if isinstance(b, AllOf):
        return all(implies(a, c) for c in b.children)
    if isinstance(a, AnyOf):
        return all(implies(c, b) for c in a.children)
    if isinstance(a, AllOf) and any(implies(c, b) for c in a.children):
        return True
    if isinstance(b, AnyOf) and any(implies(a, c) for c in b.children):
        return True
    if isinstance(a, Not) and isinstance(b, Not):
        return implies(b.child, a.child)
    if isinstance(a, Leaf) and isinstance(b, Leaf):
        return _leaf_implies(a, b)
    return False


_EQUALITY_ONLY = frozenset({"message_matches", "workspace_path_matches", "has_images", "has_tool_calls_in_history",
                            "time_of_day_between"})


def _must_mention(node: Node) -> frozenset[str]:
    """Predicate kinds any node that :func:`implies` ``node`` must mention (a cheap prefilter)."""
    if isinstance(node, Leaf):
        return frozenset((node.name,))
    if isinstance(node, AllOf):
        return frozenset().union(*(_must_mention(c) for c in node.children))
    if isinstance(node, AnyOf) and node.children:
        return frozenset.intersection(*(_must_mention(c) for c in node.children))
    return frozenset()        # Not, TRUE: no cheap necessary condition


def shadowed_by(rules: Sequence[Rule]) -> list[tuple[Rule, Rule]]:
    """(later, earlier) pairs: ``later`` is shadowed by ``earlier`` (first such earlier rule).

    Earlier rules are bucketed so a later rule is only compared with rules that could imply it:
    for leaf kinds whose leaves imply each other only when equal, only the equal leaves; otherwise
    rules whose must-mention kinds the later rule mentions. Keeps 1,000-rule files cheap.
    """
    pairs: list[tuple[Rule, Rule]] = []
    must = [_must_mention(r.when.node) for r in rules]
    unconstrained: list[int] = []                     # earlier rules with an empty must-mention set
    by_name: dict[str, list[int]] = {}                # earlier rules by one of their must-mention kinds
    by_leaf: dict[Leaf, list[int]] = {}
    for j, later in enumerate(rules):
        l_node = later.when.node
        names = leaf_names(l_node, set())
        if isinstance(l_node, Leaf) and l_node.name in _EQUALITY_ONLY:
            candidates = {*unconstrained, *by_leaf.get(l_node, ())}
        else:
            candidates = set(unconstrained)
            for name in names:
                candidates.update(i for i in by_name.get(name, ()) if must[i] <= names)
        for i in sorted(candidates):
            earlier = rules[i]
            e_node = earlier.when.node
            if isinstance(e_node, Leaf) and isinstance(l_node, Leaf):
                if not _leaf_implies(l_node, e_node):
                    continue
            elif not implies(l_node, e_node):
                continue
            if earlier.use != later.use and implies(e_node, l_node):
                continue  # spec §4.5 fallback idiom
            pairs.append((later, earlier))
            break
        if isinstance(l_node, Leaf):
            by_leaf.setdefault(l_node, []).append(j)
        if must[j]:
            by_name.setdefault(min(must[j]), []).append(j)
        else:
            unconstrained.append(j)
    return pairs


def _as_written(rule: Rule) -> str:
    """The rule as the user wrote it: ``rules[2] "name"``, or ``rules[2]`` for an unnamed rule
    (its ``rule_<i>`` name is synthetic and appears nowhere in the file)."""
    where = "rules" if rule.scope == "global" else f"workspaces[{rule.scope!r}].rules"
    return f"{where}[{rule.index}]" if rule.synthetic else f'{where}[{rule.index}] "{rule.name}"'


def shadow_warnings(rules: Sequence[Rule], filename: str) -> list[str]:
    out = []
    for later, earlier in shadowed_by(rules):
        first = f"rules[{earlier.index}]" if earlier.synthetic else f'"{earlier.name}"'
        out.append(f"{filename}:{later.line}: {_as_written(later)}: shadowed by {_as_written(earlier)} "
                   f"(every message that matches it matches {first} first)")
    return out
