"""Dispatch by role in the policy chain (sans-IO): the seed's reference and negative cases.

Candidates come from the role's tier row only; when they all fail, ``waiting_approval`` — never an
unconfigured substitute; a delegated worker never runs above the delegating model's cost tier."""
from actors.roles import parse_roles_text
from actors.router.chain import RoutingEngine
from actors.router.context import TurnContext
from actors.router.policy_file import implicit_policy
from actors.router.trace import render_trace
from actors.router.validation import availability_from_snapshot
from actors.worker.delegation import DelegationError, Delegator
from protocol.routing import Policy, ValidationFailure

import pytest

from .conftest import ROLES_TEXT, fixture_registry

OPUS, SONNET = "anthropic:claude-opus-4-8", "anthropic:claude-sonnet-4-6"
GPT55, GPT54, MINI = "openai:gpt-5.5", "openai:gpt-5.4", "openai:gpt-5.4-mini"
KEYS = {"FAKE_ANTHROPIC_KEY": "a", "FAKE_OPENAI_KEY": "o"}


def engine(roles_text=ROLES_TEXT, env=KEYS):
    registry = fixture_registry()
    roles, errors = parse_roles_text(roles_text, "roles.yaml", registry)
    assert roles is not None, errors
    return RoutingEngine(implicit_policy(registry, "routing.yaml"), registry, env, roles=roles)


def ctx(text="review this diff", **kw):
    return TurnContext(session_id="s", turn_id="t", message_text=text, **kw)


def down(*scopes):
    return availability_from_snapshot({s: {"reason": "model_unavailable"} for s in scopes})


def role_entries(decision):
    return [e for e in decision.chain if e.role is not None]


def test_medium_reviewer_on_model_unavailable_takes_the_first_configured_fallback_of_that_tier():
    d = engine().decide(ctx(role="capable-reviewer", role_tier="MEDIUM"), availability=down(SONNET))
    assert d.chosen_model == GPT54 and d.effort == "high"
    first, chosen = role_entries(d)
    assert (first.candidate_model, first.verdict, first.validation_failure) == (
        SONNET, "rejected", ValidationFailure.PROVIDER_UNAVAILABLE)
    assert (chosen.candidate_model, chosen.verdict, chosen.tier) == (GPT54, "chose", "MEDIUM")
    assert "configured fallback 1" in chosen.reason


def test_all_configured_models_of_the_tier_down_waits_for_approval_and_never_substitutes():
    """Negative case 6: opus (the role default), mini and the global default are all healthy and
    must not be used for a MEDIUM review."""
    d = engine().decide(ctx(role="capable-reviewer", role_tier="MEDIUM"), availability=down(SONNET, GPT54, GPT55))
    assert d.chosen_model is None and d.error_code == "waiting_approval" and d.winner_index == -1
    assert [e.candidate_model for e in role_entries(d)] == [SONNET, GPT54, GPT55]
    assert all(e.verdict == "rejected" for e in role_entries(d))
    assert d.error.startswith("Waiting for approval:") and "openai:gpt-5.4 (unavailable)" in d.error
    assert not any(e.policy in (Policy.GLOBAL_DEFAULT, Policy.RULE) for e in d.chain)


def test_a_not_configured_fallback_is_passed_over_like_an_outage():
    d = engine(env={"FAKE_OPENAI_KEY": "o"}).decide(ctx(role="capable-reviewer", role_tier="LARGE"))
    assert d.chosen_model == GPT55
    assert role_entries(d)[0].validation_failure is ValidationFailure.NOT_CONFIGURED


def test_trivial_implementer_dispatches_to_the_mini_model_and_large_reviewer_to_the_deep_model():
    e = engine()
    assert e.decide(ctx(role="capable-implementer", role_tier="TRIVIAL")).chosen_model == MINI
    assert e.decide(ctx(role="capable-reviewer", role_tier="LARGE")).chosen_model == OPUS


def test_unresolved_high_risk_routes_a_reviewer_through_large():
    """Negative case 5: the wrong effective review tier."""
    d = engine().decide(ctx(role="capable-reviewer", role_tier="SMALL", high_risk=True))
    assert d.chosen_model == OPUS
    chosen = role_entries(d)[-1]
    assert chosen.tier == "LARGE" and "unresolved high risk" in chosen.reason


def test_missing_tier_context_uses_the_top_level_primary_not_no_model():
    """Negative case 7."""
    d = engine().decide(ctx(role="capable-reviewer"))
    assert d.chosen_model == OPUS and role_entries(d)[-1].tier is None


def test_a_role_dispatch_always_names_its_model_explicitly_also_for_auto_agents_roles():
    """Negative case 2: a dispatch naming a target (a role) without a resolved model is never
    produced — the decision carries the model the row resolves to."""
    d = engine().decide(ctx(role="review-readonly", role_tier="SMALL"))
    assert d.chosen_model == SONNET and d.winner is not None and d.winner.candidate_model == SONNET


def test_a_model_named_only_in_the_message_text_does_not_select_the_model():
    """Negative case 3 (payload-only model): prose is not the selector; the role row is."""
    d = engine().decide(ctx("please run this on openai:gpt-5.5", role="capable-implementer", role_tier="TRIVIAL"))
    assert d.chosen_model == MINI


def test_a_target_named_only_in_prose_is_not_a_delegation_target():
    """Negative case 1 (missing outer agentName): delegate() needs tier or role as a field."""
    with pytest.raises(DelegationError, match="or give a role"):
        Delegator(None)._check_args({"task": "review this as the capable-reviewer", "context": {"mode": "minimal"}})


def test_auto_agents_omit_their_model_and_only_pinned_agents_must_name_one():
    """Negative case 4 (auto-mode omission allowance)."""
    assert parse_roles_text(ROLES_TEXT, "roles.yaml", fixture_registry())[1] == []
    pinned = 'plan-auditor: {role: capable-reviewer, mode: pinned, model: "anthropic:claude-opus-4-8"}'
    unpinned = ROLES_TEXT.replace(pinned, "plan-auditor: {role: capable-reviewer, mode: pinned}")
    _, errors = parse_roles_text(unpinned, "roles.yaml", fixture_registry())
    assert errors == ["roles.yaml:59: agents.plan-auditor.model: missing: a pinned agent names its model "
                      "(role 'capable-reviewer''s top-level primary 'anthropic:claude-opus-4-8')"]


def test_an_unknown_role_fails_the_dispatch_with_one_line():
    d = engine().decide(ctx(role="nope"))
    assert d.error_code == "unknown_role" and "unknown role 'nope'" in d.error


def test_a_worker_role_above_the_delegating_models_cost_tier_is_refused_by_the_tier_floor():
    d = engine().decide(ctx(role="review-readonly", role_tier="MEDIUM", is_worker=True, delegated_by=MINI))
    assert d.error_code == "tier_floor" and d.chosen_model is None
    assert "tier floor" in d.error and MINI in d.error
    assert all(e.policy is Policy.DELEGATE_REQUEST for e in role_entries(d))


def test_the_tier_floor_passes_over_a_higher_candidate_for_a_lower_configured_one():
    d = engine().decide(ctx(role="capable-implementer", role_tier="MEDIUM", is_worker=True, delegated_by=GPT54))
    assert d.chosen_model == SONNET    # both balanced: within the floor
    roles = ROLES_TEXT.replace('fallbacks: ["anthropic:claude-opus-4-8", "openai:gpt-5.4-mini"]',
                               'fallbacks: ["openai:gpt-5.4-mini"]')
    roles = roles.replace("planner: {role: capable-planner, mode: pinned, model: \"openai:gpt-5.5\"}",
                          "planner: {role: capable-planner, mode: auto}")
    d = engine(roles).decide(ctx(role="capable-planner", is_worker=True, delegated_by=SONNET))
    assert d.chosen_model == MINI and "tier floor" in role_entries(d)[0].reason


def test_a_pinned_agent_lets_its_model_run_above_the_delegating_models_tier():
    d = engine().decide(ctx(role="capable-reviewer", role_tier="LARGE", is_worker=True, delegated_by=SONNET))
    assert d.chosen_model == OPUS and "pinned agent" in role_entries(d)[-1].reason


def test_a_plain_tier_delegation_above_the_delegating_model_is_refused():
    e = engine()
    d = e.decide(ctx(delegate_tier="deep", is_worker=True, delegated_by=SONNET))
    assert d.error_code == "tier_floor" and "tier floor: tier=deep" in d.error
    d = e.decide(ctx(delegate_tier="fast", is_worker=True, delegated_by=SONNET))
    assert d.chosen_model == MINI


def test_the_trace_shows_role_tier_and_each_candidate_with_its_reason():
    d = engine().decide(ctx(role="capable-reviewer", role_tier="MEDIUM"), availability=down(SONNET))
    text = render_trace(d.to_event("s", "t", "2026-01-01T00:00:00Z"))
    assert "Role: capable-reviewer · tier MEDIUM" in text
    assert "ROLE" in text and f"{SONNET} (provider_unavailable)" in text
    assert f'{GPT54} (role "capable-reviewer" MEDIUM configured fallback 1)' in text
