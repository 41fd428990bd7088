"""bench/route_eval.py's metrics on hand-computable inputs (RouterBench AIQ, RouteLLM APGR/CPT)."""
import numpy as np
import pytest

from bench.route_eval import aiq, apgr, ndch, pct_strong_for


def test_aiq_of_one_point_is_its_quality_over_the_rest_of_the_cost_axis():
    assert aiq(np.array([[0.5, 0.8]]), max_x=1.0) == pytest.approx(0.4)


def test_aiq_hull_ignores_dominated_points_and_interpolates():
    pts = np.array([[0.0, 0.5], [0.5, 0.6], [1.0, 1.0]])   # the middle point lies under the chord
    assert ndch(pts).tolist() == [[0.0, 0.5], [1.0, 1.0]]
    assert aiq(pts, max_x=1.0) == pytest.approx(0.75)


def test_random_chord_has_apgr_one_half_and_needs_the_proportional_share():
    xs, ys = np.array([0.0, 1.0]), np.array([0.6, 0.8])
    assert apgr(xs, ys, 0.6, 0.8) == pytest.approx(0.5)
    assert pct_strong_for(xs, ys, 0.95 * 0.8) == pytest.approx(80.0)


def test_a_router_that_recovers_the_gap_early_needs_few_strong_calls():
    xs, ys = np.array([0.0, 0.1, 1.0]), np.array([0.6, 0.8, 0.8])
    assert pct_strong_for(xs, ys, 0.76) == pytest.approx(8.0)
    assert apgr(xs, ys, 0.6, 0.8) == pytest.approx(0.95)
