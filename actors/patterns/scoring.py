"""From neighbourhood evidence to a recommendation: shrinkage, cost blend, evidence gate, prior.

Per candidate model M, with kernel-weighted neighbour counts n_M and successes s_M:

* quality  q_M = (s_M + α·μ_M) / (n_M + α) — a Beta-style shrinkage of the 0/1 (or 0..1) outcomes
  toward M's store-wide mean μ_M, so a model seen twice near this text cannot win on luck;
* cost efficiency e_M = log(c_max / c_M) / log(c_max / c_min) over the candidates' mean costs
  (1 = cheapest, 0 = dearest, all 0 when costs are equal). Log scale because model prices span
  two orders of magnitude: a linear scale makes every model but the dearest look "cheap";
* score_M = (1 − cost_weight)·q_M + cost_weight·e_M (spec §5.5's blend).

Confidence is evidence, not the blended score: the top two scores' margin over its standard error
(binomial variance of each shrunk quality over its effective count), mapped to [0, 1) as
erf(z/√2) — the two-sided probability that the margin is not noise. The store recommends only when
that confidence, the neighbour count and the nearest similarity all clear their gates; otherwise
:func:`prior_choice` decides from the store-wide means with the same cost blend — never a fixed
model.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from attrs import frozen

from actors.patterns.types import Recommendation
from protocol.routing import ModelOption


@frozen
class Evidence:
    """Kernel-weighted neighbourhood statistics for one query, per store model (aligned arrays)."""
    models: tuple[str, ...]
    weight: np.ndarray        # Σ w_i·count_i per model (effective neighbour outcomes)
    success: np.ndarray       # Σ w_i·quality_i per model
    support: np.ndarray       # raw neighbour outcome count per model (what the sample gate counts)
    global_mean: np.ndarray   # store-wide mean quality per model
    global_cost: np.ndarray   # store-wide mean cost per model
    nearest: float            # similarity of the closest stored fingerprint (0 when none)


def efficiency(costs: np.ndarray, scale: str = "linear") -> np.ndarray:
    lo, hi = float(costs.min()), float(costs.max())
    if not hi > lo:
        return np.zeros_like(costs)
    if scale == "log" and lo > 0:
        return np.log(hi / np.maximum(costs, lo)) / math.log(hi / lo)
    return (hi - costs) / (hi - lo)


def _blend(quality: np.ndarray, costs: np.ndarray, cost_weight: float, scale: str = "linear") -> np.ndarray:
    return (1.0 - cost_weight) * quality + cost_weight * efficiency(costs, scale)


def _order(scores: np.ndarray, models: Sequence[str]) -> list[int]:
    """Best first; ties break by model id so a decision is deterministic."""
    return sorted(range(len(models)), key=lambda i: (-scores[i], models[i]))


def candidate_index(models: Sequence[str], candidates: Sequence[str] | None) -> np.ndarray:
    if candidates is None:
        return np.arange(len(models))
    wanted = set(candidates)
    return np.array([i for i, m in enumerate(models) if m in wanted], dtype=np.intp)


def recommend(ev: Evidence, cost_weight: float, *, alpha: float, candidates: Sequence[str] | None = None,
              min_confidence: float = 0.05, min_sample_size: int = 5, min_similarity: float = 0.0,
              cost_scale: str = "linear") -> tuple[Recommendation | None, str]:
    """The gated recommendation, or None with the reason it abstained."""
    return recommend_many(ev, (cost_weight,), alpha=alpha, candidates=candidates, min_confidence=min_confidence,
                          min_sample_size=min_sample_size, min_similarity=min_similarity, cost_scale=cost_scale)[0]


def recommend_many(ev: Evidence, cost_weights: Sequence[float], *, alpha: float,
                   candidates: Sequence[str] | None = None, min_confidence: float = 0.05, min_sample_size: int = 5,
                   min_similarity: float = 0.0, cost_scale: str = "linear") -> list[tuple[Recommendation | None, str]]:
    """:func:`recommend` for several cost weights over one neighbourhood (vectorised over the weights)."""
    idx = candidate_index(ev.models, candidates)
    if len(idx) == 0:
        return [(None, "no outcomes for any candidate model")] * len(cost_weights)
    if ev.nearest < min_similarity:
        return [(None, f"nothing similar stored (nearest {ev.nearest:.2f} < {min_similarity:.2f})")] * len(cost_weights)
    models = [ev.models[i] for i in idx]
    n, s, mu, support = ev.weight[idx], ev.success[idx], ev.global_mean[idx], ev.support[idx]
    denom = n + alpha
    # α = 0 (no shrinkage) leaves a model without neighbours at its store-wide mean, not 0/0
    quality = np.divide(s + alpha * mu, denom, out=mu.astype(np.float64).copy(), where=denom > 0)
    # Laplace-smoothed for the variance only, so a run of all-successes is not "certain"
    smooth = (s + alpha * mu + 1.0) / (n + alpha + 2.0)
    var = smooth * (1.0 - smooth) / (n + alpha + 2.0)
    eff = efficiency(ev.global_cost[idx], cost_scale)
    w = np.asarray(cost_weights, dtype=np.float64)[:, None]
    scores = (1.0 - w) * quality[None, :] + w * eff[None, :]          # weights × models
    # best first, ties by model id: sort by (−score, name rank)
    rank = np.argsort(np.argsort(np.array(models, dtype=object)))
    order = np.lexsort((np.broadcast_to(rank, scores.shape), -scores), axis=1)
    out: list[tuple[Recommendation | None, str]] = []
    for row, cw in enumerate(cost_weights):
        top = int(order[row, 0])
        if support[top] < min_sample_size:
            out.append((None, f"insufficient samples ({int(support[top])} < {min_sample_size})"))
            continue
        confidence = 1.0
        if len(models) > 1:
            second = int(order[row, 1])
            se = (1.0 - cw) * math.sqrt(float(var[top] + var[second])) + 1e-9
            confidence = math.erf(float(scores[row, top] - scores[row, second]) / se / math.sqrt(2.0))
        if confidence < min_confidence:
            out.append((None, f"confidence {confidence:.2f} below {min_confidence:.2f}"))
            continue
        alternatives = tuple(ModelOption(model=models[i], score=float(scores[row, i]), sample_size=int(support[i]))
                             for i in order[row, 1:])
        out.append((Recommendation(model=models[top], score=float(scores[row, top]), confidence=confidence,
                                   sample_size=int(support[top]), alternatives=alternatives), "recommended"))
    return out


def prior_choice(models: Sequence[str], global_mean: np.ndarray, global_cost: np.ndarray, cost_weight: float,
                 candidates: Sequence[str] | None = None, cost_scale: str = "linear") -> str | None:
    """The cost-aware prior: the best store-wide model under the same quality/cost blend."""
    idx = candidate_index(models, candidates)
    if len(idx) == 0:
        return None
    names = [models[i] for i in idx]
    scores = _blend(global_mean[idx], global_cost[idx], cost_weight, cost_scale)
    return names[_order(scores, names)[0]]
