"""The workflows.yaml parser never raises: any YAML shape becomes error lines (or a config)."""
import io

from hypothesis import given, settings, strategies as st
from ruamel.yaml import YAML

from actors.workflows import parse_workflows_text
from tests.roles.conftest import fixture_registry

REGISTRY = fixture_registry()
KEYS = st.sampled_from(["schema_version", "fallback_chains", "workflows", "steps", "name", "prompt", "role", "tier",
                        "model", "chain", "same_model_as", "other_family_than", "parallel", "skip_when", "review",
                        "timeout", "retry", "description", "production", "qc", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                    st.sampled_from(["60s", "1m", "5x", "anthropic:claude-opus-4-8", "opus", "balanced", "LARGE",
                                     "low_stakes", "{input}", "{steps.x}", "production", "", " x "]),
                    st.text(max_size=8))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(KEYS, inner, max_size=5)), max_leaves=30)


def dump(doc) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, DOCS, max_size=5))
def test_arbitrary_yaml_shapes_give_error_lines_never_a_traceback(doc):
    config, errors = parse_workflows_text(dump(doc), "workflows.yaml", REGISTRY, {"reviewer"})
    assert (config is None) == bool(errors)
    assert all(isinstance(e, str) and e.startswith("workflows.yaml:") and "\n" not in e for e in errors)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gives_error_lines_never_a_traceback(text):
    config, errors = parse_workflows_text(text)
    assert all(e.startswith("workflows.yaml:") for e in errors)
