"""The config parsers are total: any text yields a value or errors, never an exception."""
import json

from hypothesis import given, strategies as st
from routing_helpers import PROPERTY, registry

from actors.config.files import load_policy_text, load_registry_text
from actors.router.predicates import PREDICATE_NAMES

REG = registry()
VOCAB = ["schema_version", "global_default", "tiers", "pattern", "pattern_disagreement", "rules", "workspaces",
         "name", "when", "use", "default", "fast", "balanced", "deep", "cost_weight", "min_confidence",
         "min_sample_size", "k", "surface", "~/x", "/abs", "haiku", "opus", "x:y", *PREDICATE_NAMES]

TOKENS = list(":-{}[]#&*!|>'\"%@`?, \n\t~ab01") + ["rules", "when", "use", "schema_version: 1", "\n  ", "\n  - ",
                                                  "global_default: sonnet\n", "message_matches", "any_of"]
yamlish = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 100_000), st.floats(-2, 2, allow_nan=False),
                    st.sampled_from(VOCAB), st.text(max_size=6))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(VOCAB), children, max_size=5)),
    max_leaves=25,
)


@PROPERTY
@given(text=yamlish)
def test_random_yamlish_text_never_raises(text):
    policy, errors, warnings = load_policy_text(text, "routing.yaml", REG)
    assert (policy is None) == bool(errors)
    assert all(e.startswith("routing.yaml:") for e in errors)
    reg, errors = load_registry_text(text, "models.yaml")
    assert (reg is None) == bool(errors)


@PROPERTY
@given(doc=documents, version=st.sampled_from([None, 1]))
def test_random_structured_documents_never_raise(doc, version):
    if isinstance(doc, dict) and version is not None:
        doc = {"schema_version": version, "global_default": "sonnet", **doc}
    text = json.dumps(doc)                  # JSON is YAML: exercises the validators, not the scanner
    policy, errors, _ = load_policy_text(text, "routing.yaml", REG)
    assert (policy is None) == bool(errors)
    assert all(e.startswith("routing.yaml:1: ") for e in errors)
    reg, errors = load_registry_text(text, "models.yaml")
    assert (reg is None) == bool(errors)
