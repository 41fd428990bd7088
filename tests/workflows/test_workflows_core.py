"""The sans-IO core: workflows.yaml, templates, confidence, the seed's skip table, model choice."""
import pytest

from actors.config.files import load_registry_text
from actors.workflows import QC, RunContext, parse_workflows_text, render, skip_reason
from actors.workflows.builtin import example_text
from actors.workflows.model import Selector
from actors.workflows.select import family_of, plan_step
from actors.workflows.template import concerns, confidence

MODELS = """providers:
  anthropic: {kind: anthropic, base_url: "http://127.0.0.1:9/v1", api_key_env: A}
  openai: {kind: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: O}
models:
  "anthropic:claude-opus-4-8": {tier: deep}
  "anthropic:claude-sonnet-4-6": {tier: balanced, aliases: [sonnet]}
  "openai:gpt-5.4": {tier: balanced}
  "openai:gpt-5.4-mini": {tier: fast}
"""


@pytest.fixture
def registry():
    reg, errors = load_registry_text(MODELS)
    assert reg is not None, errors
    return reg


def test_qc_is_available_without_a_file():
    config, errors = parse_workflows_text("")
    assert errors == [] and config is not None
    assert [s.name for s in config.workflows["qc"].steps] == ["produce", "self-review", "cross-check", "synthesize"]


def test_the_shipped_example_parses_against_its_models(registry):
    config, errors = parse_workflows_text(example_text(), registry=registry)
    assert errors == [], errors
    chain = config.chains["production"]
    assert [(e.model, e.timeout_s, e.retry) for e in chain.entries] == [
        ("anthropic:claude-sonnet-4-6", 60.0, 1), ("openai:gpt-5.4", 45.0, 1)]
    assert config.workflows["answer-with-fallback"].steps[0].selector.chain == "production"
    assert len(config.workflows["triple-check"].steps[1].parallel) == 3


def test_every_error_is_reported_in_one_pass_with_its_line(registry):
    text = """schema_version: 1
fallback_chains:
  fast:
    - {model: "nobody:model", timeout: 5x, retry: 9}
workflows:
  broken:
    steps:
      - name: a
        prompt: "{steps.later}"
        bogus: 1
      - {name: b, prompt: p, chain: nope}
      - {name: c, prompt: p, model: sonnet, role: reviewer}
      - {name: d, prompt: p, skip_when: [sometimes]}
"""
    config, errors = parse_workflows_text(text, registry=registry)
    assert config is None
    assert errors == [
        "workflows.yaml:4: fallback_chains.fast[0].model: 'nobody:model' is not registered in models.yaml",
        "workflows.yaml:4: fallback_chains.fast[0].timeout: expected a duration like 60s, 1m or 500ms, got '5x'",
        "workflows.yaml:4: fallback_chains.fast[0].retry: expected a whole number 0-3 (retries after the first "
        "attempt), got 9",
        "workflows.yaml:9: workflows.broken.steps[0].prompt: {steps.later} names no earlier step (earlier: none)",
        "workflows.yaml:10: workflows.broken.steps[0].bogus: unknown key (expected one of: name, prompt, role, tier, "
        "model, chain, same_model_as, other_family_than, parallel, skip_when, review)",
        "workflows.yaml:11: workflows.broken.steps[1].chain: no fallback chain named 'nope' (defined: fast)",
        "workflows.yaml:12: workflows.broken.steps[2]: choose one of role / model / chain / tier / same_model_as, "
        "not role and model",
        "workflows.yaml:13: workflows.broken.steps[3].skip_when: unknown condition 'sometimes' (one of: low_stakes, "
        "time_critical, has_tests, creative)",
    ]


def test_yaml_syntax_and_shape_errors_never_raise():
    for text in ("workflows: [", "- a list", "workflows: 3", "workflows: {x: {steps: []}}", "fallback_chains: {c: []}"):
        config, errors = parse_workflows_text(text)
        assert config is None and errors and all(e.startswith("workflows.yaml:") for e in errors)


def test_prompt_fills_input_and_earlier_steps():
    assert render("Fix {steps.draft} for {input}", "task", {"draft": "D"}) == "Fix D for task"


def test_prompt_without_input_gets_the_input_appended():
    assert render("Review:\n{steps.draft}", "the task", {"draft": "D"}) == "Review:\nD\n\nthe task"


def test_braces_that_are_not_placeholders_pass_through():
    assert render('json {"a": 1} {input}', "t", {}) == 'json {"a": 1} t'


def test_confidence_is_the_last_confidence_line():
    assert confidence("Confidence: 20\nbody\nConfidence: 85") == 85
    assert confidence("**Confidence:** 70%") == 70
    assert confidence("I have no confidence in this line 90") is None
    assert confidence("Confidence: 150") is None


def test_concerns_are_the_bullets_under_the_heading():
    text = "Answer.\nUnresolved concerns:\n- the date is unverified\n- none\n* sources are old\n\nConfidence: 70"
    assert concerns(text) == ["the date is unverified", "sources are old"]
    assert concerns("Concerns:\n- none") == []


def _skipped(ctx: RunContext) -> list[str]:
    return [s.name for s in QC.steps if skip_reason(s, ctx) is not None]


# The seed's "When to Skip Steps" table, one test per row.
def test_skip_row_low_stakes_skips_cross_check_and_synthesis():
    assert _skipped(RunContext(stakes="low")) == ["cross-check", "synthesize"]
    assert "self-review is sufficient" in skip_reason(QC.steps[2], RunContext(stakes="low"))


def test_skip_row_time_critical_runs_a_single_model():
    assert _skipped(RunContext(time_budget_s=20)) == ["self-review", "cross-check", "synthesize"]
    assert _skipped(RunContext(time_budget_s=30)) == []


def test_skip_row_high_stakes_runs_the_full_loop_every_time():
    assert _skipped(RunContext(stakes="high", time_budget_s=5, has_tests=True, creative=True)) == []


def test_skip_row_coding_with_tests_skips_the_cross_check():
    ctx = RunContext(has_tests=True)
    assert _skipped(ctx) == ["cross-check"]
    assert "tests serve as the cross-check" in skip_reason(QC.steps[2], ctx)


def test_skip_row_creative_work_skips_the_cross_check():
    assert _skipped(RunContext(creative=True)) == ["cross-check"]


def test_family_is_the_provider_kind_without_a_registry_family(registry):
    assert family_of(registry, "anthropic:claude-opus-4-8") == "anthropic"
    assert family_of(registry, "sonnet") == "anthropic"


def test_cross_check_never_runs_on_the_producers_family(registry):
    plan = plan_step(Selector(other_family_than="produce"), registry, None,
                     {"produce": "anthropic:claude-sonnet-4-6"}, ["produce"])
    assert plan.model == "openai:gpt-5.4"
    plan = plan_step(Selector(other_family_than="produce"), registry, None, {"produce": "openai:gpt-5.4"}, ["produce"])
    assert plan.model == "anthropic:claude-sonnet-4-6"


def test_cross_check_is_skipped_when_only_the_producers_family_is_registered():
    reg, _ = load_registry_text('providers: {d: {kind: demo}}\nmodels: {"d:a": {tier: balanced}, "d:b": {tier: deep}}')
    plan = plan_step(Selector(other_family_than="produce"), reg, None, {"produce": "d:a"}, ["produce"])
    assert plan.model is None and plan.skip == "no registered model outside the producer's family (demo)"


def test_a_tier_step_avoids_the_model_whose_output_it_reviews(registry):
    plan = plan_step(Selector(tier="balanced"), registry, None, {"draft": "anthropic:claude-sonnet-4-6"}, ["draft"])
    assert plan.model == "openai:gpt-5.4"


def test_a_pinned_model_may_review_its_own_output(registry):
    plan = plan_step(Selector(model="sonnet"), registry, None, {"draft": "anthropic:claude-sonnet-4-6"}, ["draft"])
    assert plan.model == "anthropic:claude-sonnet-4-6" and "pinned" in plan.note


def test_self_review_runs_on_the_producers_model(registry):
    plan = plan_step(Selector(same_model_as="produce"), registry, None, {"produce": "openai:gpt-5.4"}, ["produce"])
    assert plan.model == "openai:gpt-5.4"


def test_reviews_are_marked_and_review_must_be_a_boolean():
    assert [s.review for s in QC.steps] == [False, True, True, False]
    config, errors = parse_workflows_text("workflows:\n  w:\n    steps:\n      - {name: a, prompt: p, review: maybe}\n")
    assert errors == ["workflows.yaml:4: workflows.w.steps[0].review: expected true or false, got 'maybe'"]
