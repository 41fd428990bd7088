"""Spec §8 worked examples, as sans-IO chain tests.

This copy of the spec lost its §8 headings; the examples are numbered here in the order they
appear: 8.1 sticky, 8.2 rule, 8.3 @override, 8.4 pattern, 8.5 model-specific outage, 8.6
provider-wide outage, 8.7 capability fallthrough, 8.8 pattern disagreement, 8.9 turn lock,
8.10 queued /model swap, 8.11 delegation, 8.12 rule ordering with a budget cap.
"""
from decimal import Decimal

from routing_helpers import (
    BASE, BOTH_KEYS, ANTHROPIC_ONLY, HAIKU, OPUS, SONNET, ctx, down, engine, recommending, registry, steps,
)

from actors.router.chain import RoutingEngine
from actors.router.policy_file import parse_policy

COMMIT_RULE = """\
rules:
  - name: "fast for commits"
    when: {message_matches: "^/commit"}
    use: haiku
"""


def test_8_1_sticky_model_wins_over_everything_below_it():
    eng = engine(BASE + COMMIT_RULE)
    d = eng.decide(ctx("Refactor this function.", sticky_model=SONNET))
    assert steps(d) == [
        ("per_message_override", "not_applicable", None),
        ("manual_sticky", "chose", SONNET),
    ]
    assert d.chosen_model == SONNET and d.winner_index == 1


def test_8_2_fresh_session_routes_commit_message_by_rule():
    d = engine(BASE + COMMIT_RULE).decide(ctx("/commit fix the auth bug"))
    assert steps(d) == [
        ("per_message_override", "not_applicable", None),
        ("manual_sticky", "not_applicable", None),
        ("rule", "chose", HAIKU),
    ]
    assert d.chain[-1].rule_name == "fast for commits"
    assert d.chain[-1].reason == 'rule "fast for commits"'


def test_8_3_override_beats_sticky_for_one_message_and_leaves_sticky_alone():
    eng = engine(BASE + COMMIT_RULE)
    ov = eng.parse_override("@haiku what's a quick name for this variable?")
    context = ctx(ov.body, sticky_model=SONNET)
    d = eng.decide(context, override=ov)
    assert steps(d) == [("per_message_override", "chose", HAIKU)]
    assert d.chain[0].reason == 'override "@haiku"'
    assert ov.body == "what's a quick name for this variable?"
    # The override is per message: the next turn (same sticky) goes back to the sticky model.
    assert context.sticky_model == SONNET
    assert eng.decide(ctx("next", sticky_model=SONNET)).chosen_model == SONNET


def test_8_4_pattern_recommendation_wins_when_no_rule_matches():
    d = engine(BASE + "rules: []\n").decide(ctx("tidy up this module"), pattern=recommending(SONNET, 0.78, 12))
    assert steps(d) == [
        ("per_message_override", "not_applicable", None),
        ("manual_sticky", "not_applicable", None),
        ("rule", "not_applicable", None),
        ("pattern", "chose", SONNET),
    ]
    assert d.chain[2].reason == "no rules match"
    assert d.chain[3].confidence == 0.78 and d.chain[3].sample_size == 12
    assert d.chain[3].reason == "confidence 0.78, 12 samples"


ARCH_WS = """\
rules:
  - name: "deep for architecture"
    when: {message_matches: "architecture"}
    use: opus
workspaces:
  /work/proj:
    default: sonnet
"""


def test_8_5_model_specific_outage_falls_through_to_workspace_default_with_banner():
    d = engine(BASE.replace("sonnet", "haiku") + ARCH_WS).decide(
        ctx("Walk me through the architecture of this codebase", workspace="/work/proj"),
        availability=down(OPUS), pattern=recommending(SONNET, 0.9, 2),
    )
    assert steps(d) == [
        ("per_message_override", "not_applicable", None),
        ("manual_sticky", "not_applicable", None),
        ("rule", "rejected", OPUS),
        ("pattern", "not_applicable", None),
        ("workspace_default", "chose", SONNET),
    ]
    assert d.chain[2].validation_failure.value == "provider_unavailable"
    assert d.chain[2].reason == "anthropic:claude-opus-4-7 model-specific outage"
    assert d.chain[3].reason == "insufficient samples (2 < 5)"
    assert d.banners == (
        "anthropic:claude-opus-4-7 currently unavailable. Routing fell through to anthropic:claude-sonnet-4-6.",
    )


def test_8_6_provider_wide_outage_is_a_hard_failure_naming_the_provider():
    text = """\
schema_version: 1
global_default: haiku
rules:
  - {name: "default override", when: {}, use: opus}
workspaces:
  /work/proj: {default: sonnet}
"""
    reg = registry()
    pol, errors, _ = parse_policy(text, "routing.yaml", reg)
    eng = RoutingEngine(pol, reg, ANTHROPIC_ONLY)       # no other provider configured
    d = eng.decide(ctx("anything", workspace="/work/proj"), availability=down("anthropic"))
    assert steps(d) == [
        ("per_message_override", "not_applicable", None),
        ("manual_sticky", "not_applicable", None),
        ("rule", "rejected", OPUS),
        ("pattern", "not_applicable", None),
        ("workspace_default", "rejected", SONNET),
        ("global_default", "rejected", HAIKU),
    ]
    assert all(e.reason == "all anthropic models temporarily unavailable"
               for e in d.chain if e.verdict.value == "rejected")
    assert d.winner_index == -1 and d.chosen_model is None and d.error_code == "no_model_available"
    assert d.error == (
        "No model available for this turn.\n"
        "anthropic provider currently unavailable.\n"
        "Tried: opus, sonnet, haiku — all on anthropic.\n"
        "Run /model <id> to choose a model from a configured provider, or wait for recovery."
    )
    # With another configured provider the message lists it.
    d2 = RoutingEngine(pol, reg, BOTH_KEYS).decide(ctx("x", workspace="/work/proj"), availability=down("anthropic"))
    assert "from a configured provider (openai), or wait for recovery." in d2.error


def test_8_7_capability_rejection_falls_through_to_workspace_default():
    text = BASE + """\
rules:
  - {name: "long context", when: {estimated_input_tokens_gt: 80000}, use: haiku}
workspaces:
  /work/proj: {default: opus}
"""
    d = engine(text).decide(ctx("look at this", estimated_input_tokens=90000, has_images=True, workspace="/work/proj"))
    assert steps(d)[2:] == [
        ("rule", "rejected", HAIKU),
        ("pattern", "not_applicable", None),
        ("workspace_default", "chose", OPUS),
    ]
    assert d.chain[2].validation_failure.value == "no_vision_support"
    assert d.chain[2].rule_name == "long context"
    assert d.banners == ()        # capability fallthrough is recorded, not bannered


def test_8_8_pattern_disagreement_is_deferred_and_surfaced():
    text = BASE + COMMIT_RULE + "pattern_disagreement: {surface: true}\n"
    d = engine(text).decide(ctx("/commit fix the auth bug"), pattern=recommending(SONNET, 0.87, 23))
    assert steps(d)[2:] == [("rule", "chose", HAIKU), ("pattern", "deferred", SONNET)]
    assert d.winner_index == 2 and d.chosen_model == HAIKU
    deferred = d.chain[3]
    assert (deferred.confidence, deferred.sample_size) == (0.87, 23)
    assert deferred.reason == ("suggested anthropic:claude-sonnet-4-6 (confidence 0.87, 23 samples) "
                               "— outranked by rule")
    assert d.banners == (
        '→ Routing to anthropic:claude-haiku-4-5 per rule "fast for commits"\n'
        "Pattern store suggests: anthropic:claude-sonnet-4-6 (confidence 0.87, 23 similar tasks)\n"
        "/route override to use Sonnet for this turn\n"
        "/route ignore to dismiss",
    )


def test_8_8_disagreement_stays_quiet_below_its_thresholds_or_when_off():
    on = BASE + COMMIT_RULE + "pattern_disagreement: {surface: true}\n"
    assert engine(on).decide(ctx("/commit x"), pattern=recommending(SONNET, 0.80, 23)).banners == ()
    assert engine(on).decide(ctx("/commit x"), pattern=recommending(SONNET, 0.90, 19)).banners == ()
    off = engine(BASE + COMMIT_RULE).decide(ctx("/commit x"), pattern=recommending(SONNET, 0.87, 23))
    assert off.banners == () and steps(off)[-1] == ("pattern", "deferred", SONNET)


def test_8_9_turn_lock_one_decision_at_turn_start_holds_for_the_turn():
    text = BASE + """\
rules:
  - {name: "balanced for reads", when: {message_matches: "^Read "}, use: sonnet}
  - {name: "long context", when: {estimated_input_tokens_gt: 1000}, use: opus}
"""
    eng = engine(text)
    start = ctx("Read README.md and summarize", estimated_input_tokens=200)
    d = eng.decide(start)
    assert d.chosen_model == SONNET and d.chain[-1].rule_name == "balanced for reads"
    # Tool results grow the context mid-turn; the decision is a value taken at T=0 and the router
    # is only consulted at turn boundaries, so the lock is the caller holding ``d``.
    event = d.to_event(start.session_id, start.turn_id)
    assert event.chosen_model == SONNET and event.chain == d.chain


def test_8_10_queued_model_swap_applies_as_sticky_at_the_next_turn():
    eng = engine(BASE)
    assert eng.decide(ctx("turn N", sticky_model=None)).chosen_model == SONNET
    d = eng.decide(ctx("turn N+1", sticky_model="opus"))
    assert steps(d)[-1] == ("manual_sticky", "chose", OPUS)


def test_8_11_worker_routes_through_delegate_request_to_the_tier_model():
    text = BASE + "tiers: {fast: haiku, balanced: sonnet, deep: opus}\n"
    d = engine(text).decide(ctx("rename `foo` to `bar` in src/", delegate_tier="fast", is_worker=True),
                            pattern=recommending(OPUS, 0.99, 100))
    assert steps(d) == [
        ("per_message_override", "not_applicable", None),
        ("manual_sticky", "not_applicable", None),
        ("rule", "not_applicable", None),
        ("pattern", "not_applicable", None),
        ("delegate_request", "chose", HAIKU),
    ]
    assert d.chain[3].reason == "insufficient context (delegated worker)"
    assert d.chain[4].reason == "tier=fast resolves"


def test_8_12_rule_order_decides_between_architecture_and_budget_cap():
    arch_first = BASE + """\
rules:
  - {name: "deep for architecture", when: {message_matches: "architecture"}, use: opus}
  - {name: "budget cap", when: {cost_today_exceeds_usd: 5.00}, use: haiku}
"""
    budget_first = BASE + """\
rules:
  - {name: "budget cap", when: {cost_today_exceeds_usd: 5.00}, use: haiku}
  - {name: "deep for architecture", when: {message_matches: "architecture"}, use: opus}
"""
    turn = ctx("Walk me through the architecture...", cost_today_usd=Decimal("5.42"))
    first = engine(arch_first).decide(turn)
    assert first.chosen_model == OPUS and first.chain[-1].rule_name == "deep for architecture"
    assert first.banners == ()
    second = engine(budget_first).decide(turn)
    assert second.chosen_model == HAIKU and second.chain[-1].rule_name == "budget cap"
    assert second.banners == ('Daily budget $5.00 exceeded ($5.42 today). Routing per "budget cap" rule.',)
