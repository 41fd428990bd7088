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

from typing import Sequence

from .policy import Rule
from .predicates import AllOf, AnyOf, Leaf, Node, Not

_MONOTONE_UP = ("estimated_input_tokens_gt", "cost_today_exceeds_usd")   # bigger threshold ⇒ smaller one


def _leaf_implies(a: Leaf, b: Leaf) -> bool:
    if a.name != b.name:
        return False
    if a.arg == b.arg:
        return True
    name = a.name
    if name in _MONOTONE_UP:
        return a.arg >= b.arg
    if name == "estimated_input_tokens_lt":
        return a.arg <= b.arg
    if name in ("skills_matching_message_includes", "file_extensions_in_context"):
        return a.arg <= b.arg
    if name == "message_contains_any":
        # Both sides are casefolded and evaluation compares casefolded texts, so "message
        # contains x" and "x contains y" give "message contains y" for any script.
        return all(any(y in x for y in b.arg) for x in a.arg)
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


def _leaf_names(node: Node, out: set[str]) -> set[str]:
    if isinstance(node, Leaf):
        out.add(node.name)
    elif isinstance(node, (AllOf, AnyOf)):
        for child in node.children:
            _leaf_names(child, out)
    elif isinstance(node, Not):
        _leaf_names(node.child, out)
    return out


def shadowed_by(rules: Sequence[Rule]) -> list[tuple[Rule, Rule]]:
    """(later, earlier) pairs: ``later`` is shadowed by ``earlier`` (first such earlier rule)."""
    names = [_leaf_names(r.when.node, set()) for r in rules]
    pairs: list[tuple[Rule, Rule]] = []
    for j, later in enumerate(rules):
        for i in range(j):
            earlier = rules[i]
            e_node = earlier.when.node
            # Cheap necessary condition for the common case: a leaf can only be implied by a
            # predicate that mentions the same leaf kind.
            if isinstance(e_node, Leaf) and e_node.name not in names[j]:
                continue
            if not implies(later.when.node, e_node):
                continue
            if earlier.use != later.use and implies(e_node, later.when.node):
                continue  # spec §4.5 fallback idiom
            pairs.append((later, earlier))
            break
    return pairs


def shadow_warnings(rules: Sequence[Rule], filename: str) -> list[str]:
    return [
        f'{filename}:{later.line}: {later.label}: shadowed by {earlier.label} '
        f'(every message that matches it matches "{earlier.name}" first)'
        for later, earlier in shadowed_by(rules)
    ]
