"""Spec §10.1 required tests at the core level (1, 2, 6, 7, 8, 9, 13, 17, 18, 19, 22) and chain details."""
import itertools
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st
from routing_helpers import (
    BASE, BOTH_KEYS, GPT5, GPT5_MINI, HAIKU, OPUS, PROPERTY, SONNET, ctx, down, engine, recommending, registry,
    steps,
)

from actors.router.chain import RoutingEngine, decide
from actors.router.policy_file import parse_policy
from protocol.events import RouteDecided
from protocol.routing import Policy, ValidationFailure, Verdict

DEMO_MODELS = """\
providers:
  demo: {kind: demo}
models:
""" + "".join(f"  demo:{n}: {{aliases: [{n}]}}\n" for n in ("o", "s", "r", "p", "w", "g"))

ALL_POLICIES = """\
schema_version: 1
global_default: g
rules:
  - {name: "r", when: {message_contains_any: ["rule-me"]}, use: r}
workspaces:
  /ws: {default: w}
"""


def _fire(enabled: set[str]):
    reg = registry(DEMO_MODELS)
    pol, errors, _ = parse_policy(ALL_POLICIES, "routing.yaml", reg)
    eng = RoutingEngine(pol, reg, {})
    text = "rule-me please" if "rule" in enabled else "hello"
    ov = eng.parse_override("@o " + text) if "override" in enabled else eng.parse_override(text)
    context = ctx(ov.body, sticky_model="s" if "sticky" in enabled else None,
                  workspace="/ws" if "workspace" in enabled else None)
    src = recommending("demo:p", 0.9, 50) if "pattern" in enabled else None
    return eng.decide(context, override=ov, pattern=src)


ORDER = ["override", "sticky", "rule", "pattern", "workspace", "global"]
EXPECTED = {"override": "demo:o", "sticky": "demo:s", "rule": "demo:r", "pattern": "demo:p",
            "workspace": "demo:w", "global": "demo:g"}


@pytest.mark.parametrize("high,low", list(itertools.combinations(ORDER, 2)))
def test_1_pipeline_order_higher_priority_policy_wins_every_pair(high, low):
    d = _fire({high, low})
    assert d.chosen_model == EXPECTED[high]


def test_1_pipeline_order_delegate_request_beats_workspace_default():
    text = BASE + "tiers: {fast: haiku, balanced: sonnet, deep: opus}\nworkspaces:\n  /ws: {default: gpt5}\n"
    d = engine(text).decide(ctx("task", workspace="/ws", delegate_tier="fast", is_worker=True))
    assert steps(d)[-1] == ("delegate_request", "chose", HAIKU)


def test_2_first_matching_rule_wins_among_overlapping_predicates():
    text = BASE + """\
rules:
  - {name: "a", when: {message_contains_any: [refactor]}, use: opus}
  - {name: "b", when: {message_matches: "refactor the"}, use: haiku}
  - {name: "c", when: {}, use: gpt5}
"""
    d = engine(text).decide(ctx("please refactor the parser"))
    assert d.chain[-1].rule_name == "a" and d.chosen_model == OPUS
    assert [e.policy for e in d.chain].count(Policy.RULE) == 1


def test_6_capability_fallthrough_records_rejection_and_continues():
    text = BASE + "rules:\n  - {name: img, when: {has_images: true}, use: haiku}\n"
    d = engine(text).decide(ctx("see picture", has_images=True))
    assert steps(d)[2:] == [("rule", "rejected", HAIKU), ("pattern", "not_applicable", None),
                            ("workspace_default", "not_applicable", None), ("global_default", "chose", SONNET)]
    event = d.to_event("s", "t")
    assert event.chain[2].validation_failure is ValidationFailure.NO_VISION_SUPPORT


CAPS_MODELS = """\
providers:
  demo: {kind: demo}
  anthropic: {kind: anthropic}
models:
  demo:bare:
    aliases: [bare]
    capabilities: {max_context_tokens: 1000, supports_images: false, supports_tools: false,
                   supports_system_prompt: false, supports_structured_output: false}
  demo:full:
    aliases: [full]
    capabilities: {max_context_tokens: 100000, supports_images: true, supports_structured_output: true}
  anthropic:claude-keyed: {aliases: [keyed]}
"""


@pytest.mark.parametrize("field,value,failure", [
    ("has_images", True, "no_vision_support"),
    ("estimated_input_tokens", 1001, "exceeds_context_window"),
    ("has_tool_definitions", True, "no_tool_support"),
    ("has_system_prompt", True, "no_system_prompt_support"),
    ("requires_structured_output", True, "no_structured_output_support"),
])
def test_each_capability_gate_rejects_only_when_the_turn_needs_it(field, value, failure):
    reg = registry(CAPS_MODELS)
    pol, _, _ = parse_policy("schema_version: 1\nglobal_default: full\nrules:\n  - {when: {}, use: bare}\n",
                             "routing.yaml", reg)
    eng = RoutingEngine(pol, reg, {})
    assert eng.decide(ctx("x")).chosen_model == "demo:bare"          # needs nothing: bare is fine
    d = eng.decide(ctx("x", **{field: value}))
    assert d.chain[2].validation_failure.value == failure
    assert d.chosen_model == "demo:full"


def test_18_tool_capability_gate_rejects_with_no_tool_support_and_chain_continues():
    reg = registry(CAPS_MODELS)
    pol, _, _ = parse_policy("schema_version: 1\nglobal_default: full\nrules:\n  - {name: t, when: {}, use: bare}\n",
                             "routing.yaml", reg)
    d = RoutingEngine(pol, reg, {}).decide(ctx("x", has_tool_definitions=True))
    assert d.chain[2].verdict is Verdict.REJECTED
    assert d.chain[2].validation_failure is ValidationFailure.NO_TOOL_SUPPORT
    assert d.chosen_model == "demo:full" and d.chain[-1].policy is Policy.GLOBAL_DEFAULT


def test_gates_run_in_spec_order_so_the_first_failure_is_reported():
    reg = registry(CAPS_MODELS)
    pol, _, _ = parse_policy("schema_version: 1\nglobal_default: full\nrules:\n  - {when: {}, use: bare}\n",
                             "routing.yaml", reg)
    everything = dict(has_images=True, estimated_input_tokens=5000, has_tool_definitions=True,
                      has_system_prompt=True, requires_structured_output=True)
    d = RoutingEngine(pol, reg, {}).decide(ctx("x", **everything), availability=down("demo:bare"))
    assert d.chain[2].validation_failure is ValidationFailure.PROVIDER_UNAVAILABLE
    d = RoutingEngine(pol, reg, {}).decide(ctx("x", **everything))
    assert d.chain[2].validation_failure is ValidationFailure.NO_VISION_SUPPORT


def test_missing_api_key_rejects_with_not_configured_before_availability():
    reg = registry(CAPS_MODELS)
    pol, _, _ = parse_policy("schema_version: 1\nglobal_default: full\nrules:\n  - {when: {}, use: keyed}\n",
                             "routing.yaml", reg)
    d = RoutingEngine(pol, reg, {}).decide(ctx("x"), availability=down("anthropic"))
    assert d.chain[2].validation_failure is ValidationFailure.NOT_CONFIGURED
    assert d.chain[2].reason == ("anthropic:claude-keyed: provider anthropic has no API key "
                                 "(ANTHROPIC_API_KEY is not set)")
    assert RoutingEngine(pol, reg, {"ANTHROPIC_API_KEY": "k"}).decide(ctx("x")).chosen_model == "anthropic:claude-keyed"


def test_7_provider_unavailable_fallthrough_records_provider_unavailable_and_banner():
    text = BASE.replace("sonnet", "gpt5") + """\
rules:
  - {name: "deep", when: {}, use: opus}
workspaces:
  /ws: {default: gpt5}
"""
    d = engine(text).decide(ctx("x", workspace="/ws"), availability=down("anthropic"))
    assert steps(d)[2] == ("rule", "rejected", OPUS)
    assert d.chain[2].validation_failure is ValidationFailure.PROVIDER_UNAVAILABLE
    assert d.chain[2].reason == "all anthropic models temporarily unavailable"
    assert d.chosen_model == GPT5
    assert d.banners == ("anthropic provider currently unavailable. Routing fell through to openai:gpt-5 "
                         "(workspace default).",)


def test_8_hard_failure_when_every_provider_is_unavailable():
    text = BASE + "rules:\n  - {when: {}, use: gpt5}\nworkspaces:\n  /ws: {default: opus}\n"
    d = engine(text).decide(ctx("x", workspace="/ws"), availability=down("anthropic", "openai"))
    assert d.winner_index == -1 and d.chosen_model is None and d.error_code == "no_model_available"
    assert d.error == (
        "No model available for this turn.\n"
        "Tried: openai:gpt-5 (unavailable), anthropic:claude-opus-4-7 (unavailable), "
        "anthropic:claude-sonnet-4-6 (unavailable)\n"
        "Run /model <id> to choose explicitly, or /rules check."
    )
    event = d.to_event("s", "t", "2026-05-08T14:23:11Z")
    assert isinstance(event, RouteDecided) and event.winner_index == -1 and event.chosen_model is None
    assert event.error == d.error


def test_hard_failure_lists_each_model_once_even_if_tried_twice():
    text = BASE + "rules:\n  - {when: {}, use: sonnet}\n"
    d = engine(text).decide(ctx("x"), availability=down(SONNET))
    assert d.error.splitlines()[1] == "Tried: anthropic:claude-sonnet-4-6 (unavailable)"


def test_9_pattern_below_min_confidence_or_samples_returns_none():
    eng = engine(BASE + "pattern: {min_confidence: 0.3, min_sample_size: 10}\n")
    low_conf = eng.decide(ctx("x"), pattern=recommending(OPUS, 0.29, 50))
    assert steps(low_conf)[3] == ("pattern", "not_applicable", None)
    assert low_conf.chain[3].reason == "confidence 0.29 below 0.30"
    few = eng.decide(ctx("x"), pattern=recommending(OPUS, 0.9, 9))
    assert few.chain[3].reason == "insufficient samples (9 < 10)"
    assert low_conf.chosen_model == few.chosen_model == SONNET
    assert eng.decide(ctx("x"), pattern=recommending(OPUS, 0.3, 10)).chosen_model == OPUS


def test_pattern_source_receives_the_workspace_pattern_config_which_replaces_global():
    text = (BASE + "pattern: {cost_weight: 0.2, min_sample_size: 3}\n"
            "workspaces:\n  /ws:\n    pattern: {cost_weight: 0.7}\n")
    src = recommending(OPUS, 0.9, 4)
    d = engine(text).decide(ctx("x", workspace="/ws"), pattern=src)
    cfg = src.calls[0][1]
    assert (cfg.cost_weight, cfg.min_sample_size) == (0.7, 5)   # full replacement: default sample size
    assert d.chain[3].reason == "insufficient samples (4 < 5)"
    assert engine(text).decide(ctx("x", workspace="/elsewhere"), pattern=src).chosen_model == OPUS


def test_17_one_decision_chain_lists_policies_that_ran_and_stops_at_winner():
    text = BASE + "rules:\n  - {name: a, when: {message_matches: zzz}, use: opus}\n"
    d = engine(text).decide(ctx("hello"))
    assert [e.policy for e in d.chain] == [Policy.PER_MESSAGE_OVERRIDE, Policy.MANUAL_STICKY, Policy.RULE,
                                           Policy.PATTERN, Policy.WORKSPACE_DEFAULT, Policy.GLOBAL_DEFAULT]
    assert Policy.DELEGATE_REQUEST not in [e.policy for e in d.chain]     # skipped outside delegation
    assert d.winner_index == len(d.chain) - 1
    assert [e.verdict for e in d.chain].count(Verdict.CHOSE) == 1
    sticky = engine(text).decide(ctx("hello", sticky_model="haiku"))
    assert len(sticky.chain) == 2 and sticky.winner_index == 1
    event = sticky.to_event("sess", "turn", "2026-05-08T14:23:11Z")
    assert (event.session_id, event.turn_id, event.timestamp, event.chosen_model) == ("sess", "turn",
                                                                                     "2026-05-08T14:23:11Z", HAIKU)
    assert event.elapsed_ms == sticky.elapsed_ms >= 0


def test_matched_rules_rejected_in_turn_each_get_an_entry_and_fallback_rule_wins():
    text = BASE + """\
rules:
  - {name: "deep for architecture", when: {message_matches: architecture}, use: opus}
  - {name: "deep for architecture (sonnet fallback)", when: {message_matches: architecture}, use: sonnet}
"""
    d = engine(text).decide(ctx("architecture review"), availability=down(OPUS))
    assert steps(d)[2:] == [("rule", "rejected", OPUS), ("rule", "chose", SONNET)]
    assert d.chain[-1].rule_name == "deep for architecture (sonnet fallback)"


def test_19_per_model_availability_opus_down_sonnet_healthy():
    to_opus = engine(BASE.replace("sonnet", "haiku") + "rules:\n  - {name: o, when: {}, use: opus}\n")
    to_sonnet = engine(BASE.replace("sonnet", "haiku") + "rules:\n  - {name: s, when: {}, use: sonnet}\n")
    avail = down(OPUS)
    d = to_opus.decide(ctx("x"), availability=avail)
    assert d.chain[2].reason == "anthropic:claude-opus-4-7 model-specific outage"
    assert d.chosen_model == HAIKU
    assert to_sonnet.decide(ctx("x"), availability=avail).chain[2].verdict is Verdict.CHOSE


TIERS = "tiers: {fast: haiku, balanced: sonnet, deep: opus}\n"


def test_13_delegation_upgrades_a_text_only_fast_model_for_an_image_task():
    d = engine(BASE + TIERS).decide(ctx("describe", has_images=True, delegate_tier="fast", is_worker=True))
    assert steps(d)[-1] == ("delegate_request", "chose", SONNET)
    assert d.chain[-1].reason == "tier=fast upgraded to balanced (fast: anthropic:claude-haiku-4-5 no_vision_support)"


def test_22_tier_exhaustion_at_deep_returns_no_model_available_for_tier():
    d = engine(BASE + TIERS).decide(ctx("x", delegate_tier="fast", is_worker=True), availability=down("anthropic"))
    assert d.error_code == "no_model_available_for_tier" and d.chosen_model is None and d.winner_index == -1
    last = d.chain[-1]
    assert (last.policy, last.verdict, last.candidate_model) == (Policy.DELEGATE_REQUEST, Verdict.REJECTED, OPUS)
    assert last.reason.endswith("; no tier above deep")
    assert [e.policy for e in d.chain][-1] is Policy.DELEGATE_REQUEST    # no fall-through to defaults
    assert d.error.startswith('No model available for tier "fast".\nTried: anthropic:claude-haiku-4-5 (unavailable)')
    deep = engine(BASE + TIERS).decide(ctx("x", delegate_tier="deep", is_worker=True), availability=down(OPUS))
    assert deep.error_code == "no_model_available_for_tier"


def test_tier_resolution_workspace_then_global_then_registry():
    text = BASE + TIERS + "workspaces:\n  /ws:\n    tiers: {fast: gpt5-mini, balanced: gpt5, deep: gpt5}\n"
    eng = engine(text)
    assert eng.resolve_tier("fast", "/ws/sub") == GPT5_MINI
    assert eng.resolve_tier("fast", "/other") == HAIKU
    assert engine(BASE).resolve_tier("deep") == OPUS          # registry: first model with tier deep
    # deep == balanced in the workspace: the duplicate is not re-validated, exhaustion is reported.
    d = eng.decide(ctx("x", workspace="/ws", delegate_tier="balanced", is_worker=True), availability=down(GPT5))
    assert d.error_code == "no_model_available_for_tier"


def test_unknown_delegate_tier_is_no_model_available_for_tier():
    d = engine(BASE).decide(ctx("x", delegate_tier="huge"))
    assert d.error_code == "no_model_available_for_tier" and "unknown tier 'huge'" in d.error


def test_workspace_matching_is_equal_or_inside_and_longest_wins():
    text = BASE + """\
workspaces:
  /work: {default: haiku}
  /work/proj: {default: opus}
  ~/code: {default: gpt5}
"""
    eng = engine(text)
    assert eng.decide(ctx("x", workspace="/work/proj")).chosen_model == OPUS
    assert eng.decide(ctx("x", workspace="/work/proj/src")).chosen_model == OPUS
    assert eng.decide(ctx("x", workspace="/work/proj2")).chosen_model == HAIKU      # sibling, not inside
    assert eng.decide(ctx("x", workspace="/workshop")).chosen_model == SONNET
    assert eng.decide(ctx("x", workspace="/home/u/code/app")).chosen_model == GPT5  # ~ expanded
    assert eng.decide(ctx("x")).chosen_model == SONNET


def test_workspace_rules_run_before_global_rules():
    text = BASE + """\
rules:
  - {name: global-sql, when: {message_contains_any: [sql]}, use: haiku}
workspaces:
  /ws:
    rules:
      - {name: "this project uses gpt for SQL", when: {file_extensions_in_context: [".sql"]}, use: gpt5}
"""
    eng = engine(text)
    inside = eng.decide(ctx("fix the sql", workspace="/ws", file_extensions=frozenset({".sql"})))
    assert inside.chain[-1].rule_name == "this project uses gpt for SQL"
    outside = eng.decide(ctx("fix the sql", workspace="/other", file_extensions=frozenset({".sql"})))
    assert outside.chain[-1].rule_name == "global-sql"


def test_invalid_override_is_a_hard_failure_with_its_own_code():
    eng = engine(BASE)
    ov = eng.parse_override("@nosuch hello")
    d = eng.decide(ctx(ov.body), override=ov)
    assert d.error_code == "invalid_override" and d.winner_index == -1
    assert steps(d) == [("per_message_override", "rejected", None)]
    assert d.error.startswith('Unknown model "@nosuch".')


def test_rejected_override_falls_through_with_banner():
    eng = engine(BASE)
    ov = eng.parse_override("@opus go")
    d = eng.decide(ctx(ov.body), override=ov, availability=down(OPUS))
    assert steps(d)[0] == ("per_message_override", "rejected", OPUS)
    assert d.chosen_model == SONNET
    assert d.banners == ("anthropic:claude-opus-4-7 currently unavailable. Routing fell through to "
                         "anthropic:claude-sonnet-4-6.",)


def test_sticky_model_given_by_alias_and_unregistered_sticky_falls_through():
    eng = engine(BASE)
    assert eng.decide(ctx("x", sticky_model="opus")).chosen_model == OPUS
    d = eng.decide(ctx("x", sticky_model="gone:model"))
    assert d.chain[1].validation_failure is ValidationFailure.NOT_CONFIGURED
    assert d.chosen_model == SONNET


def test_budget_banner_only_for_positive_cost_predicates_that_fired():
    text = BASE + """\
rules:
  - {name: cheap-nights, when: {not: {cost_today_exceeds_usd: 1}}, use: haiku}
  - {name: cap, when: {any_of: [{cost_today_exceeds_usd: 10}, {cost_today_exceeds_usd: 3}]}, use: gpt5}
"""
    eng = engine(text)
    assert eng.decide(ctx("x", cost_today_usd=Decimal("0.5"))).banners == ()
    d = eng.decide(ctx("x", cost_today_usd=Decimal("4")))
    assert d.banners == ('Daily budget $3.00 exceeded ($4.00 today). Routing per "cap" rule.',)


def test_module_level_decide_matches_engine():
    reg = registry()
    pol, _, _ = parse_policy(BASE, "routing.yaml", reg)
    assert decide(ctx("x"), pol, reg, env=BOTH_KEYS).chosen_model == SONNET


DETERMINISM_SPEC = BASE + """\
rules:
  - {name: a, when: {message_matches: "^/c|x.*y"}, use: haiku}
  - {name: b, when: {any_of: [{has_images: true}, {cost_today_exceeds_usd: 5}]}, use: opus}
  - {name: c, when: {estimated_input_tokens_gt: 100000}, use: gpt5}
workspaces:
  /ws: {default: gpt5-mini}
"""
_PAIR = []


def _two_engines():
    # Two independently built engines: determinism must not depend on per-engine caches.
    if not _PAIR:
        _PAIR.extend((engine(DETERMINISM_SPEC), engine(DETERMINISM_SPEC)))
    return _PAIR


@PROPERTY
@given(
    text=st.text(max_size=40),
    images=st.booleans(),
    tokens=st.integers(0, 500_000),
    tools=st.booleans(),
    cost=st.decimals(min_value=0, max_value=20, places=2),
    sticky=st.sampled_from([None, "haiku", "opus", "nope:x"]),
    workspace=st.sampled_from([None, "/ws", "/ws/a", "/other"]),
    outage=st.sampled_from([(), ("anthropic",), (OPUS,), ("anthropic", "openai")]),
)
def test_decisions_are_deterministic_for_identical_inputs(text, images, tokens, tools, cost, sticky, workspace,
                                                          outage):
    first, second = _two_engines()
    make = lambda: ctx(text, has_images=images, estimated_input_tokens=tokens, has_tool_definitions=tools,  # noqa: E731
                       cost_today_usd=cost, sticky_model=sticky, workspace=workspace)
    a = first.decide(make(), availability=down(*outage))
    b = second.decide(make(), availability=down(*outage))
    c = first.decide(make(), availability=down(*outage))
    assert (a.chain, a.winner_index, a.chosen_model, a.banners, a.error) == \
        (b.chain, b.winner_index, b.chosen_model, b.banners, b.error) == \
        (c.chain, c.winner_index, c.chosen_model, c.banners, c.error)
    assert (a.chosen_model is None) == (a.winner_index == -1)


def test_a_failing_pattern_store_is_not_applicable_not_a_failed_turn():
    def broken(context, cfg):
        raise RuntimeError("db locked")

    d = engine(BASE).decide(ctx("x"), pattern=broken)
    assert d.chain[3].reason == "pattern store error (RuntimeError)" and d.chosen_model == SONNET
