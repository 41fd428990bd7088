"""The roles.yaml parser never raises: any YAML shape becomes error lines (or a config)."""
from hypothesis import given, settings, strategies as st
from ruamel.yaml import YAML
import io

from actors.roles import parse_roles_text

from .conftest import fixture_registry

REGISTRY = fixture_registry()
KEYS = st.sampled_from(["schema_version", "orchestrator", "roles", "agents", "primary", "fallbacks", "cost_tier",
                        "latency_tier", "by_tier", "TRIVIAL", "LARGE", "inherit_from", "consumers", "role", "mode",
                        "model", "reviewer", "reasoning_effort_hint", "capable-reviewer", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                    st.sampled_from(["default", "high", "low", "pinned", "auto", "anthropic:claude-opus-4-8",
                                     "openai:gpt-5.4", "MEDIUM", "", " x "]), st.text(max_size=8))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(KEYS, inner, max_size=5)), max_leaves=30)


def dump(doc) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, DOCS, max_size=5))
def test_arbitrary_yaml_shapes_give_error_lines_never_a_traceback(doc):
    config, errors = parse_roles_text(dump(doc), "roles.yaml", REGISTRY)
    assert (config is None) == bool(errors)
    assert all(isinstance(e, str) and e.startswith("roles.yaml:") and "\n" not in e for e in errors)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gives_error_lines_never_a_traceback(text):
    config, errors = parse_roles_text(text, "roles.yaml", None)
    assert all(e.startswith("roles.yaml:") for e in errors)
