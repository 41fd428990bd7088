"""The store plugs into the policy chain's slot 4 as it is (the phase-B adapter is one lambda)."""
from datetime import datetime, UTC

from actors.config.files import load_policy_text, load_registry_text
from actors.patterns.fingerprint import HashedFingerprinter
from actors.patterns.store import PatternStore
from actors.router.chain import RoutingEngine
from actors.router.context import TurnContext

CHEAP, DEAR = "anthropic:claude-haiku-4-5", "anthropic:claude-opus-4-7"
MODELS = """\
providers:
  anthropic: {kind: anthropic}
models:
  anthropic:claude-haiku-4-5: {tier: fast, aliases: [haiku]}
  anthropic:claude-sonnet-4-6: {tier: balanced, aliases: [sonnet]}
  anthropic:claude-opus-4-7: {tier: deep, aliases: [opus]}
"""
ROUTING = ("schema_version: 1\nglobal_default: sonnet\n"
           "pattern: {cost_weight: 0.05, min_confidence: 0.5, min_sample_size: 5}\n")
TEXT = "review the database migration script for locking problems, case {i}"


def engine() -> RoutingEngine:
    reg, errors = load_registry_text(MODELS, "models.yaml")
    assert reg is not None, errors
    pol, errors, _ = load_policy_text(ROUTING, "routing.yaml", reg, home="/home/u")
    assert pol is not None, errors
    return RoutingEngine(pol, reg, {"ANTHROPIC_API_KEY": "k"})


def turn(text: str) -> TurnContext:
    return TurnContext(session_id="s", turn_id="t", message_text=text,
                       now_local=datetime(2026, 5, 8, 12, tzinfo=UTC))


def source(store: PatternStore):
    return lambda ctx, cfg: store.recommend(ctx.message_text, None, cfg.cost_weight, cfg.min_confidence,
                                            cfg.min_sample_size)


def test_the_store_chooses_in_slot_4_once_rated_outcomes_back_it():
    store = PatternStore(HashedFingerprinter())
    eng = engine()
    cold = eng.decide(turn(TEXT.format(i=99)), pattern=source(store))
    assert cold.chosen_model == "anthropic:claude-sonnet-4-6"          # empty store: the default decides
    for i in range(12):
        store.add_outcome(TEXT.format(i=i), DEAR, 1.0, 0.05)
        store.add_outcome(TEXT.format(i=i), CHEAP, 0.0, 0.002)
    warm = eng.decide(turn(TEXT.format(i=99)), pattern=source(store))
    assert warm.chosen_model == DEAR
    entry = next(e for e in warm.chain if e.policy.value == "pattern")
    assert entry.verdict.value == "chose" and entry.sample_size >= 5 and entry.confidence >= 0.5
