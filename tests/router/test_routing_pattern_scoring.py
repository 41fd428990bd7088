"""Spec §5.5 scoring (§10.1 tests 11 and 25) and the pattern gate."""
import math

import pytest
from hypothesis import given, strategies as st
from routing_helpers import PROPERTY

from actors.router.pattern_scoring import Neighbor, passes_gate, recommend, score_models

# Haiku: cheap and decent. Sonnet: pricier and better.
CLUSTER = [
    Neighbor("haiku", 0.80, 10, 0.01),
    Neighbor("haiku", 0.70, 10, 0.01),
    Neighbor("sonnet", 0.95, 5, 0.05),
    Neighbor("sonnet", 0.90, 5, 0.05),
]


def test_success_is_sample_size_weighted():
    rows = [Neighbor("m", 1.0, 50, 1.0), Neighbor("m", 0.0, 1, 1.0), Neighbor("n", 0.5, 1, 1.0)]
    scores = {o.model: o.score for o in score_models(rows, cost_weight=0.0)}
    assert scores["m"] == pytest.approx(50 / 51)
    assert {o.model: o.sample_size for o in score_models(rows, 0.0)} == {"m": 51, "n": 1}


def test_11_cost_weight_zero_and_one_recommend_different_models():
    quality = recommend(CLUSTER, cost_weight=0.0)
    cost = recommend(CLUSTER, cost_weight=1.0)
    assert quality.model == "sonnet" and cost.model == "haiku"
    assert quality.score == pytest.approx(0.925)
    assert cost.score == pytest.approx(1.0)                 # cheapest gets efficiency 1.0
    assert [o.model for o in cost.alternatives] == ["sonnet"] and cost.alternatives[0].score == 0.0
    # confidence = (top − runner_up) / top
    assert quality.confidence == pytest.approx((0.925 - 0.75) / 0.925)


def test_default_cost_weight_blend():
    rec = recommend(CLUSTER, cost_weight=0.05)
    assert rec.model == "sonnet"
    assert rec.score == pytest.approx(0.95 * 0.925)
    assert rec.alternatives[0].score == pytest.approx(0.95 * 0.75 + 0.05 * 1.0)


def test_25_degenerate_equal_costs_reduce_to_pure_quality_without_raising():
    rows = [Neighbor("a", 0.6, 3, 0.02), Neighbor("b", 0.9, 3, 0.02)]
    for cw in (0.0, 0.05, 0.5):
        options = score_models(rows, cost_weight=cw)
        assert [o.model for o in options] == ["b", "a"]
        assert [o.score for o in options] == pytest.approx([(1 - cw) * 0.9, (1 - cw) * 0.6])
    # cost_weight 1 with no cost spread: every score is 0 → confidence 0 (top == 0), no division error.
    rec = recommend(rows, cost_weight=1.0)
    assert rec.score == 0.0 and rec.confidence == 0.0


def test_single_model_cluster_and_empty_cluster():
    only = recommend([Neighbor("a", 0.5, 4, 0.1)], cost_weight=0.05)
    assert (only.model, only.confidence, only.sample_size, only.alternatives) == ("a", 1.0, 4, ())
    assert recommend([], 0.05) is None
    assert recommend([Neighbor("a", 0.5, 0, 0.1), Neighbor("b", math.nan, 3, 0.1)], 0.05) is None


def test_gate_needs_both_confidence_and_sample_size():
    rec = recommend(CLUSTER, 0.0)
    assert passes_gate(rec, min_confidence=0.05, min_sample_size=5)
    assert not passes_gate(rec, min_confidence=0.5, min_sample_size=5)
    assert not passes_gate(rec, min_confidence=0.05, min_sample_size=11)
    assert not passes_gate(None, 0.0, 1)


def test_ties_break_by_model_id_deterministically():
    rows = [Neighbor("zeta", 0.5, 1, 1.0), Neighbor("alpha", 0.5, 1, 1.0)]
    assert recommend(rows, 0.3).model == "alpha"


neighbors = st.lists(st.builds(Neighbor, st.sampled_from("abcd"), st.floats(0, 1), st.integers(0, 60),
                               st.floats(0, 2)), max_size=10)


@PROPERTY
@given(rows=neighbors, cw=st.floats(0, 1))
def test_scores_stay_in_range_and_confidence_in_unit_interval(rows, cw):
    rec = recommend(rows, cw)
    if rec is None:
        assert all(r.sample_size <= 0 for r in rows)
        return
    assert 0.0 <= rec.confidence <= 1.0
    assert all(-1e-9 <= o.score <= 1 + 1e-9 for o in (rec, *rec.alternatives))
    assert recommend(rows, cw) == rec
