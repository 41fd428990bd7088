"""The pattern store's decisions on synthetic outcomes: gate, prior, shrinkage, learning, persistence."""
import numpy as np
import pytest

from actors.patterns.fingerprint import HashedFingerprinter
from actors.patterns.store import PatternStore, StoreParams

CHEAP, DEAR = "local:small", "cloud:large"
TOPICS = {
    "sql": "optimise the slow sql query joining orders and customers table number {i}",
    "poem": "write a short rhyming poem about the ocean and the moon, variant {i}",
}


def store(**params) -> PatternStore:
    return PatternStore(HashedFingerprinter(), StoreParams(**params))


def fill(s: PatternStore, topic: str, model: str, quality: float, n: int, cost: float, start: int = 0) -> None:
    for i in range(start, start + n):
        s.add_outcome(TOPICS[topic].format(i=i), model, quality, cost)


def test_thin_evidence_abstains_and_the_prior_decides():
    s = store()
    fill(s, "sql", DEAR, 1.0, 2, cost=0.01)
    fill(s, "sql", CHEAP, 0.0, 2, cost=0.001)
    text = TOPICS["sql"].format(i=99)
    rec, why = s.explain(text, min_sample_size=5)
    assert rec is None and why == "insufficient samples (2 < 5)"
    [d] = s.decide(text, [0.0], min_sample_size=5)
    assert (d.model, d.source, d.confidence) == (DEAR, "prior", 0.0)


def test_the_prior_weighs_quality_against_cost_rather_than_naming_a_fixed_model():
    s = store()
    fill(s, "sql", DEAR, 0.9, 3, cost=0.02)
    fill(s, "sql", CHEAP, 0.6, 3, cost=0.0002)
    decided = s.decide("nothing like anything stored", [0.0, 1.0])
    assert [(d.source, d.model) for d in decided] == [("prior", DEAR), ("prior", CHEAP)]


def test_unrelated_text_gets_no_recommendation():
    s = store()
    fill(s, "sql", DEAR, 1.0, 20, cost=0.01)
    fill(s, "sql", CHEAP, 0.0, 20, cost=0.001)
    rec, why = s.explain("zzz qqq xxyy")
    assert rec is None and why.startswith("nothing similar stored")


def test_a_narrow_margin_is_not_confident_enough():
    s = store()
    fill(s, "sql", DEAR, 1.0, 8, cost=0.001)
    fill(s, "sql", DEAR, 0.0, 2, cost=0.001, start=8)
    fill(s, "sql", CHEAP, 1.0, 7, cost=0.001)
    fill(s, "sql", CHEAP, 0.0, 3, cost=0.001, start=7)
    rec, why = s.explain(TOPICS["sql"].format(i=99), cost_weight=0.0, min_confidence=0.5)
    assert rec is None and why.startswith("confidence")


def test_clear_evidence_recommends_with_confidence_and_alternatives():
    s = store()
    fill(s, "sql", DEAR, 1.0, 30, cost=0.01)
    fill(s, "sql", CHEAP, 0.0, 30, cost=0.001)
    rec = s.recommend(TOPICS["sql"].format(i=99), cost_weight=0.05, min_confidence=0.5, min_sample_size=20)
    assert rec is not None and rec.model == DEAR and rec.confidence > 0.9 and rec.sample_size >= 20
    assert [a.model for a in rec.alternatives] == [CHEAP]


def test_shrinkage_keeps_one_lucky_neighbour_from_beating_a_well_evidenced_model():
    def build(alpha: float) -> PatternStore:
        s = store(alpha=alpha, power=8.0)
        fill(s, "sql", CHEAP, 0.8, 40, cost=0.001)
        fill(s, "poem", DEAR, 0.1, 40, cost=0.001)        # the dear model is poor store-wide…
        s.add_outcome(TOPICS["sql"].format(i=500), DEAR, 1.0, 0.001)   # …and once lucky on sql
        return s
    text = TOPICS["sql"].format(i=99)
    assert build(alpha=0.0).recommend(text, cost_weight=0.0, min_confidence=0.0, min_sample_size=1).model == DEAR
    assert build(alpha=2.0).recommend(text, cost_weight=0.0, min_confidence=0.0, min_sample_size=1).model == CHEAP


def test_rated_outcomes_on_similar_texts_move_the_recommendation():
    s = store()
    fill(s, "sql", CHEAP, 1.0, 10, cost=0.001)
    fill(s, "sql", DEAR, 1.0, 10, cost=0.01)
    text = TOPICS["sql"].format(i=99)
    assert s.recommend(text, cost_weight=0.05).model == CHEAP      # equal quality: cheaper wins
    fill(s, "sql", CHEAP, 0.0, 15, cost=0.001, start=100)            # users rate the cheap answers bad
    assert s.recommend(text, cost_weight=0.05).model == DEAR


def test_candidates_limit_the_choice():
    s = store()
    fill(s, "sql", DEAR, 1.0, 10, cost=0.01)
    fill(s, "sql", CHEAP, 0.5, 10, cost=0.001)
    rec = s.recommend(TOPICS["sql"].format(i=99), candidates=[CHEAP], cost_weight=0.0)
    assert rec is not None and rec.model == CHEAP
    assert s.decide("x", [0.0], candidates=["unknown:model"]) == [None]


def test_outcome_rows_rebuild_an_identical_store():
    s = store()
    fill(s, "sql", DEAR, 1.0, 8, cost=0.01)
    fill(s, "poem", CHEAP, 0.7, 8, cost=0.001)
    copy = store()
    for row in s.rows():
        copy.add_row(row)
    text = TOPICS["poem"].format(i=99)
    assert len(copy) == len(s) == 16
    assert copy.recommend(text) == s.recommend(text)


def test_rows_from_another_fingerprint_or_out_of_range_are_refused():
    s = store()
    row = s.add_outcome("hello there", CHEAP, 1.0, 0.0)
    other = PatternStore(HashedFingerprinter(dim=256))
    with pytest.raises(ValueError, match="dimensions"):
        other.add_row(row)
    assert (len(other), other.models) == (0, [])          # a refused row leaves no trace
    with pytest.raises(ValueError, match="quality"):
        s.add_outcome("hello", CHEAP, 1.5, 0.0)


def test_identical_texts_share_one_fingerprint_row():
    s = store()
    for _ in range(3):
        s.add_outcome("the same text", CHEAP, 1.0, 0.001)
    ev = s.evidence(s.fingerprint("the same text"))
    assert ev.support.tolist() == [3.0] and ev.nearest == pytest.approx(1.0, abs=1e-5)


def test_old_outcomes_fade_with_a_half_life():
    day = 86400.0
    s = store(half_life_days=1.0)
    fill(s, "sql", CHEAP, 1.0, 10, cost=0.001)
    weight_now = s.evidence(s.fingerprint(TOPICS["sql"].format(i=1)), now=0.0).weight
    weight_later = s.evidence(s.fingerprint(TOPICS["sql"].format(i=1)), now=3 * day).weight
    assert np.allclose(weight_later, weight_now / 8)


def test_stats_count_outcomes_per_model_and_name_the_fingerprint():
    s = store()
    fill(s, "sql", DEAR, 1.0, 3, cost=0.01)
    fill(s, "sql", CHEAP, 0.5, 2, cost=0.001)
    st = s.stats()
    assert (st["outcomes"], st["distinct_texts"], st["fingerprint"]) == (5, 3, "hashed")
    assert st["models"][CHEAP] == {"outcomes": 2, "mean_quality": 0.5, "mean_cost_usd": pytest.approx(0.001)}


def test_without_shrinkage_a_model_with_no_neighbours_keeps_its_store_wide_mean():
    s = store(alpha=0.0)
    fill(s, "sql", CHEAP, 1.0, 10, cost=0.001)
    fill(s, "poem", DEAR, 0.5, 10, cost=0.01)
    rec = s.recommend(TOPICS["sql"].format(i=99), cost_weight=0.0, min_confidence=0.0)
    assert rec is not None and rec.model == CHEAP
    assert [(a.model, a.score) for a in rec.alternatives] == [(DEAR, 0.5)]


def test_nonsense_parameters_are_refused():
    for bad in ({"k": 0}, {"alpha": -1.0}, {"cost_scale": "cubic"}, {"half_life_days": 0.0}):
        with pytest.raises(ValueError, match="invalid pattern store parameters"):
            StoreParams(**bad)


def test_add_many_learns_exactly_what_one_row_at_a_time_learns():
    from actors.patterns.store import PatternStore
    rng = np.random.default_rng(3)
    texts = [f"refactor the parser module step {i % 7}" for i in range(40)]     # repeats share a row
    models = [f"m{i % 6}" for i in range(40)]                                  # > 4 models: the tables grow
    quality = rng.random(40).round(2).tolist()
    cost = (rng.random(40) / 100).tolist()
    one, many = PatternStore(), PatternStore()
    for i in range(40):
        one.add_outcome(texts[i], models[i], quality[i], cost[i], workspace="w", at=float(i))
    many.add_many(np.stack([many.fingerprint(t) for t in texts]), models, quality, cost, ["w"] * 40,
                  [float(i) for i in range(40)])
    assert one.stats() == many.stats()
    assert list(one.rows()) == list(many.rows())
    probe = "refactor the parser module step 3"
    assert one.explain(probe, min_sample_size=1) == many.explain(probe, min_sample_size=1)
