"""Shadowed-rule warnings: sound (never wrong), conservative."""
import textwrap

import pytest
from routing_helpers import registry

from actors.config.files import load_policy_text
from actors.router.predicates import compile_when
from actors.router.shadow import implies


def warnings_for(rules: str) -> list[str]:
    text = "schema_version: 1\nglobal_default: sonnet\nrules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")
    pol, errors, warnings = load_policy_text(text, "routing.yaml", registry())
    assert errors == []
    return warnings


def test_match_everything_rule_shadows_every_later_rule():
    assert warnings_for("""\
        - {name: y, when: {}, use: opus}
        - {name: x, when: {has_images: true}, use: haiku}
        - {name: z, when: {message_matches: "a"}, use: haiku}
        """) == [
        'routing.yaml:5: rules[1] "x": shadowed by rules[0] "y" (every message that matches it matches "y" first)',
        'routing.yaml:6: rules[2] "z": shadowed by rules[0] "y" (every message that matches it matches "y" first)',
    ]


def test_narrower_later_rule_with_extra_conditions_is_shadowed():
    assert warnings_for("""\
        - {name: a, when: {message_contains_any: [sql]}, use: opus}
        - {name: b, when: {message_contains_any: [sql], has_images: true}, use: haiku}
        - {name: c, when: {message_contains_any: [postgresql]}, use: haiku}
        - {name: d, when: {estimated_input_tokens_gt: 90000}, use: haiku}
        - {name: e, when: {estimated_input_tokens_gt: 100000}, use: haiku}
        - {name: f, when: {all_of: [{cost_today_exceeds_usd: 2}, {any_of: [{has_images: true}]}]}, use: opus}
        - {name: g, when: {cost_today_exceeds_usd: 3, has_images: true, file_extensions_in_context: [py]}, use: gpt5}
        """) == [
        'routing.yaml:5: rules[1] "b": shadowed by rules[0] "a" (every message that matches it matches "a" first)',
        'routing.yaml:6: rules[2] "c": shadowed by rules[0] "a" (every message that matches it matches "a" first)',
        'routing.yaml:8: rules[4] "e": shadowed by rules[3] "d" (every message that matches it matches "d" first)',
        'routing.yaml:10: rules[6] "g": shadowed by rules[5] "f" (every message that matches it matches "f" first)',
    ]


def test_spec_fallback_idiom_same_predicate_different_model_is_not_warned():
    assert warnings_for("""\
        - {name: "deep for architecture", when: {message_matches: "architecture"}, use: opus}
        - {name: "deep for architecture (sonnet fallback)", when: {message_matches: "architecture"}, use: sonnet}
        """) == []


def test_same_predicate_same_model_is_dead_and_warned():
    assert len(warnings_for("""\
        - {name: a, when: {message_matches: "architecture"}, use: opus}
        - {name: b, when: {message_matches: "architecture"}, use: opus}
        """)) == 1


def test_broader_later_rule_and_unrelated_rules_are_not_warned():
    assert warnings_for("""\
        - {name: a, when: {message_contains_any: [sql], has_images: true}, use: opus}
        - {name: b, when: {message_contains_any: [sql]}, use: haiku}
        - {name: c, when: {estimated_input_tokens_gt: 100000}, use: haiku}
        - {name: d, when: {estimated_input_tokens_gt: 90000}, use: haiku}
        - {name: e, when: {message_matches: "a.*"}, use: haiku}
        - {name: f, when: {message_matches: "ab"}, use: haiku}
        - {name: g, when: {not: {has_images: true}}, use: opus}
        - {name: h, when: {has_images: false}, use: haiku}
        """) == []


def P(data):
    return compile_when(data).node


@pytest.mark.parametrize("a,b,expected", [
    ({"any_of": [{"has_images": True}, {"message_contains_any": ["xy"]}]},
     {"any_of": [{"message_contains_any": ["x"]}, {"has_images": True}]}, True),
    ({"any_of": [{"has_images": True}, {"message_matches": "x"}]}, {"has_images": True}, False),
    ({"not": {"estimated_input_tokens_gt": 10}}, {"not": {"estimated_input_tokens_gt": 20}}, True),
    ({"not": {"estimated_input_tokens_gt": 20}}, {"not": {"estimated_input_tokens_gt": 10}}, False),
    ({"estimated_input_tokens_lt": 10}, {"estimated_input_tokens_lt": 20}, True),
    ({"skills_matching_message_includes": ["a"]}, {"skills_matching_message_includes": ["a", "b"]}, True),
    ({"message_contains_any": ["STRASSE"]}, {"message_contains_any": ["straße"]}, True),  # casefold semantics
    ({"message_contains_any": ["ab"]}, {"message_contains_any": ["abc"]}, False),
    ({"time_of_day_between": ["09:00", "10:00"]}, {"time_of_day_between": ["08:00", "11:00"]}, False),
])
def test_implication_is_sound_and_conservative(a, b, expected):
    assert implies(P(a), P(b)) is expected


from hypothesis import given, strategies as st  # noqa: E402
from routing_helpers import PROPERTY  # noqa: E402
from test_routing_predicates import contexts, trees  # noqa: E402


pairs = st.one_of(
    st.tuples(trees, trees),
    st.builds(lambda b, x: ({"all_of": [b, x]}, b), trees, trees),
    st.builds(lambda a, x: (a, {"any_of": [x, a]}), trees, trees),
    st.builds(lambda a, x: ({"not": {"any_of": [a, x]}}, {"not": a}), trees, trees),
)


@PROPERTY
@given(pair=pairs, samples=st.lists(contexts, min_size=1, max_size=6))
def test_implication_is_never_wrong(pair, samples):
    a, b = (compile_when(x) for x in pair)
    if implies(a.node, b.node):
        for context in samples:
            assert not a(context) or b(context)


def test_a_shadow_warning_names_both_rules_as_written_unnamed_ones_by_position():
    assert warnings_for("""\
        - {when: {message_matches: "architecture"}, use: opus}
        - {name: later, when: {message_matches: "architecture"}, use: opus}
        - {when: {message_matches: "architecture"}, use: opus}
        """) == [
        'routing.yaml:5: rules[1] "later": shadowed by rules[0] (every message that matches it matches rules[0] first)',
        'routing.yaml:6: rules[2]: shadowed by rules[0] (every message that matches it matches rules[0] first)',
    ]
