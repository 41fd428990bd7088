"""The review spec grammar ``backend[:model[:effort]]`` and its precedence, as tables."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.review.precedence import Layer, default_spec, resolve
from actors.review.spec import ReviewSpec, parse_spec

from .registry_fixture import registry

REG = registry()

# (spec text, expected ReviewSpec) — every form the grammar accepts.
ACCEPTED = [
    ("codex", ReviewSpec("codex")),
    ("none", ReviewSpec("none")),
    ("openai:gpt-5.4", ReviewSpec("openai", "gpt-5.4")),
    ("openai:gpt-5.4:xhigh", ReviewSpec("openai", "gpt-5.4", "xhigh")),
    ("codex:gpt-5.5:high", ReviewSpec("codex", "gpt-5.5", "high")),
    ("  codex : gpt-5.5 : high  ", ReviewSpec("codex", "gpt-5.5", "high")),     # parts are trimmed
    ("anthropic:claude-opus-4-8:low", ReviewSpec("anthropic", "claude-opus-4-8", "low")),
    ("local:llama3:8b", ReviewSpec("local", "llama3:8b")),                     # ':' inside a model name
    ("openai:gpt-9", ReviewSpec("openai", "gpt-9")),                           # unknown model: accepted
    ("openai:gpt-9:medium", ReviewSpec("openai", "gpt-9", "medium")),
]

# (spec text, a fragment of the one error) — every way a spec is refused.
REFUSED = [
    ("", "empty review spec"),
    ("   ", "empty review spec"),
    ("Codex", "case-sensitive: did you mean 'codex'?"),
    ("OpenAI:gpt-5.4", "did you mean 'openai'?"),
    ("cursor", "unknown backend 'cursor'"),
    (":gpt-5.4", "empty backend"),
    ("openai:", "empty model"),
    ("openai: :high", "empty model"),
    ("openai:gpt-5.4:", "empty effort"),
    ("none:gpt-5.4", "'none' takes no model or effort"),
    ("anthropic:claude-sonnet-4-6:xhigh", "effort 'xhigh' is not supported"),   # strict per model
    ("openai:gpt-5.4-mini:low", "declares no efforts"),
    ("openai:gpt-5.4:HIGH", "effort 'HIGH' is not supported"),                  # case-sensitive too
    ("openai:gpt-5.4:max", "effort 'max' is not supported"),
    ("openai:gpt-9:max", "'max' is not an effort"),
    ("x" * 400, "characters long"),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_review_spec_grammar_accepts(text, expected):
    parsed = parse_spec(text, REG)
    assert parsed.spec == expected and parsed.errors == ()


@pytest.mark.parametrize(("text", "fragment"), REFUSED)
def test_review_spec_grammar_refuses_with_one_clear_error(text, fragment):
    parsed = parse_spec(text, REG)
    assert parsed.spec is None
    assert len(parsed.errors) == 1 and fragment in parsed.errors[0], parsed.errors


def test_unknown_model_is_warned_and_accepted():
    parsed = parse_spec("openai:gpt-9", REG)
    assert parsed.ok
    assert parsed.warnings and "'gpt-9' is not registered" in parsed.warnings[0]
    assert "gpt-5.4" in parsed.warnings[0]    # says what is registered


def test_spec_text_round_trips():
    for _, spec in ACCEPTED:
        assert parse_spec(spec.text(), REG).spec == spec


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60),
                 st.lists(st.sampled_from(["codex", "openai", "none", "gpt-5.4", "high", "", " ", ":", "Codex",
                                           "xhigh", "llama3", "8b", "\x00", "é"]), max_size=5).map(":".join),
                 st.integers(), st.none(), st.lists(st.text(max_size=3))))
def test_parser_never_raises_whatever_it_is_given(value):
    parsed = parse_spec(value, REG)
    assert parsed.ok != bool(parsed.errors)
    assert all("\n" not in e for e in parsed.errors)


# --- precedence: per-task → per-spec → ORCHESTRATOR_REVIEW_BACKEND → config → default --------

LAYERS = {"task": "codex", "spec": "openai:gpt-5.4", "env": "anthropic", "config": "none",
          "default": "anthropic:claude-sonnet-4-6"}
PRECEDENCE = [
    (("task", "spec", "env", "config", "default"), "task", "codex"),
    (("spec", "env", "config", "default"), "spec", "openai:gpt-5.4"),
    (("env", "config", "default"), "env", "anthropic"),
    (("config", "default"), "config", "none"),
    (("default",), "default", "anthropic:claude-sonnet-4-6"),
    (("task", "default"), "task", "codex"),
    (("env", "default"), "env", "anthropic"),
]


@pytest.mark.parametrize(("present", "source", "spec"), PRECEDENCE)
def test_precedence_the_highest_set_layer_decides(present, source, spec):
    layers = [Layer(s, LAYERS[s] if s in present else None) for s in reversed(LAYERS)]   # order does not matter
    resolved = resolve(layers, REG)
    assert (resolved.source, resolved.spec.text()) == (source, spec)


def test_a_blank_layer_counts_as_unset():
    resolved = resolve([Layer("env", "  "), Layer("config", "codex")], REG)
    assert resolved.source == "config"


def test_an_invalid_higher_layer_is_an_error_naming_its_origin_not_a_silent_fallthrough():
    resolved = resolve([Layer("env", "Codex", "ORCHESTRATOR_REVIEW_BACKEND"), Layer("config", "codex")], REG)
    assert not resolved.ok and resolved.source == "env"
    error = resolved.errors[0]
    assert error.startswith("ORCHESTRATOR_REVIEW_BACKEND: ") and "did you mean 'codex'" in error


def test_nothing_set_and_no_default_is_an_error():
    assert not resolve([Layer("default", None)], REG).ok


def test_default_is_the_global_default_model_as_a_spec():
    assert default_spec("anthropic:claude-sonnet-4-6", REG) == "anthropic:claude-sonnet-4-6"
    assert default_spec("local:llama3:8b", REG) == "local:llama3:8b"
    assert default_spec(None, REG) is None
