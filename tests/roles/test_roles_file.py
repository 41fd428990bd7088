"""roles.yaml: the seed's table loads; resolve() as the seed; every violation as one line."""
import pytest

from actors.roles import RoleError, parse_roles_text, resolve

from .conftest import ROLES_TEXT, fixture_registry

OPUS, SONNET = "anthropic:claude-opus-4-8", "anthropic:claude-sonnet-4-6"
GPT55, GPT54, MINI = "openai:gpt-5.5", "openai:gpt-5.4", "openai:gpt-5.4-mini"


def load(text=ROLES_TEXT):
    config, errors = parse_roles_text(text, "roles.yaml", fixture_registry())
    assert errors == [] and config is not None
    return config


def errors_of(text):
    config, errors = parse_roles_text(text, "roles.yaml", fixture_registry())
    assert config is None and errors
    return errors


def test_the_seeds_capable_reviewer_table_loads_as_roles_yaml():
    config = load()
    reviewer = config.roles["capable-reviewer"]
    assert reviewer.reviewer and reviewer.default.primary == OPUS and reviewer.default.fallbacks == (GPT55,)
    for tier in ("TRIVIAL", "SMALL", "MEDIUM"):
        row = reviewer.row(tier)
        assert (row.primary, row.fallbacks, row.cost_tier) == (SONNET, (GPT54, GPT55), "medium")
    assert reviewer.row("LARGE") is reviewer.default
    assert config.orchestrator == "orchestrator"
    assert config.pinned_models("capable-reviewer") == {OPUS}


def test_trivial_implementer_resolves_to_the_mini_model():
    r = resolve(load(), "capable-implementer", "TRIVIAL")
    assert (r.model, r.tier, r.cost_tier, r.effort) == (MINI, "TRIVIAL", "low", "medium")


def test_large_reviewer_resolves_to_the_deep_model():
    r = resolve(load(), "capable-reviewer", "LARGE")
    assert (r.model, r.fallbacks, r.cost_tier) == (OPUS, (GPT55,), "high")


def test_unresolved_high_risk_forces_large_for_a_reviewer_role():
    r = resolve(load(), "capable-reviewer", "SMALL", high_risk=True)
    assert (r.tier, r.model, r.forced_large) == ("LARGE", OPUS, True)
    assert resolve(load(), "capable-reviewer", None, high_risk=True).tier == "LARGE"


def test_high_risk_does_not_change_a_role_that_is_not_a_reviewer():
    r = resolve(load(), "capable-implementer", "TRIVIAL", high_risk=True)
    assert (r.tier, r.model) == ("TRIVIAL", MINI)


def test_no_tier_context_uses_the_roles_top_level_primary_and_tier_is_null():
    """Negative case 7: a missing tier never omits the model."""
    r = resolve(load(), "capable-reviewer")
    assert r.tier is None and r.model == OPUS and r.to_json() == {
        "role": "capable-reviewer", "tier": None, "model": OPUS, "fallbacks": [GPT55], "cost_tier": "high",
        "effort": "high"}


def test_an_absent_or_inherited_tier_is_the_role_default():
    config = load()
    assert resolve(config, "capable-planner", "TRIVIAL").model == GPT55
    assert resolve(config, "capable-implementer", "LARGE").model == SONNET
    assert resolve(config, "capable-implementer", "medium").tier == "MEDIUM"   # case-insensitive


def test_unknown_role_or_tier_is_one_clear_error():
    with pytest.raises(RoleError, match="unknown role 'nope'"):
        resolve(load(), "nope")
    with pytest.raises(RoleError, match="unknown tier 'HUGE'"):
        resolve(load(), "capable-reviewer", "HUGE")


def test_lowering_the_orchestrators_cost_tier_below_a_pinned_reviewer_violates_the_tier_floor():
    text = ROLES_TEXT.replace("""    fallbacks: ["openai:gpt-5.5"]
    cost_tier: high
    latency_tier: slow
    reasoning_effort_hint: high
    consumers: [orchestrator]""", """    fallbacks: ["openai:gpt-5.5"]
    cost_tier: medium
    latency_tier: slow
    reasoning_effort_hint: high
    consumers: [orchestrator]""")
    errors = errors_of(text)
    floor = [e for e in errors if "tier floor" in e]
    assert {e.split("'")[3] for e in floor} == {"planner", "plan-auditor", "assumption-verifier"}
    assert all("'orchestrator'" in e and e.startswith("roles.yaml:10: roles.orchestration-capable.cost_tier:")
               for e in floor)
    assert len(floor) == len(errors)


def test_tier_shape_violations_are_named():
    text = ROLES_TEXT.replace("      LARGE: {inherit_from: default}\n  capable-reviewer:",
                              "      HUGE: {inherit_from: default}\n      SMALL: {primary: \"openai:gpt-5.4\"}\n"
                              "      MEDIUM: {inherit_from: planner}\n  capable-reviewer:")
    errors = errors_of(text)
    assert any("by_tier.HUGE: 'HUGE' is not a complexity tier" in e for e in errors)
    assert any("by_tier.SMALL: a by_tier override must be a full row: missing fallbacks, cost_tier, latency_tier"
               in e for e in errors)
    assert any("by_tier.MEDIUM.inherit_from: 'planner': only 'default'" in e for e in errors)


def test_agent_index_and_consumers_must_agree_both_ways():
    text = ROLES_TEXT.replace("consumers: [executability-verifier]", "consumers: [executability-verifier, ghost]")
    text = text.replace("  code-mapper: {role: fast-readonly, mode: auto}",
                        "  code-mapper: {role: fast-readonly, mode: auto}\n  stray: {role: fast-readonly, mode: auto}")
    errors = errors_of(text)
    assert any("roles.review-readonly.consumers: consumer 'ghost' is not an agent under agents" in e for e in errors)
    assert any("agents.stray: agent 'stray' uses role 'fast-readonly' but roles.fast-readonly.consumers "
               "does not list it" in e for e in errors)


def test_a_pinned_model_must_be_its_roles_top_level_primary_and_auto_agents_carry_no_model():
    text = ROLES_TEXT.replace('planner: {role: capable-planner, mode: pinned, model: "openai:gpt-5.5"}',
                              'planner: {role: capable-planner, mode: pinned, model: "openai:gpt-5.4"}')
    text = text.replace("code-reviewer: {role: capable-reviewer, mode: auto}",
                        'code-reviewer: {role: capable-reviewer, mode: auto, model: "openai:gpt-5.4"}')
    errors = errors_of(text)
    assert any("agents.planner.model: pinned model 'openai:gpt-5.4' is not role 'capable-planner''s top-level "
               "primary 'openai:gpt-5.5'" in e for e in errors)
    assert any("agents.code-reviewer.model: an auto agent carries no model" in e for e in errors)


def test_every_model_must_be_registered_in_models_yaml():
    text = ROLES_TEXT.replace('fallbacks: ["openai:gpt-5.4"]\n    cost_tier: medium\n    latency_tier: medium\n'
                              '    consumers: [executability-verifier]',
                              'fallbacks: ["openai:gpt-9", "mini"]\n    cost_tier: medium\n    latency_tier: medium\n'
                              '    consumers: [executability-verifier]')
    errors = errors_of(text)
    assert any("roles.review-readonly.fallbacks[0]: model 'openai:gpt-9' is not registered in models.yaml" in e
               for e in errors)
    assert any("'mini' is not a model id" in e for e in errors)


def test_all_errors_come_in_one_pass_with_file_and_line():
    text = ROLES_TEXT.replace("cost_tier: low", "cost_tier: cheap")
    text = text.replace("mode: auto}\n  core", "mode: sometimes}\n  core")
    errors = errors_of(text)
    assert any(":52: roles.fast-readonly.cost_tier: 'cheap' is not one of: low, medium, high" in e for e in errors)
    assert any("agents.code-reviewer.mode: 'sometimes' is not one of: auto, pinned" in e for e in errors)
    assert all(e.startswith("roles.yaml:") for e in errors)


def test_a_broken_role_is_not_reported_again_as_unknown_by_its_agents():
    text = ROLES_TEXT.replace("    cost_tier: low\n    latency_tier: fast\n    reasoning_effort_hint: low",
                              "    latency_tier: fast\n    reasoning_effort_hint: low")
    errors = errors_of(text)
    assert len(errors) == 1 and "roles.fast-readonly.cost_tier: missing" in errors[0]
