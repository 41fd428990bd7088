"""Pattern-store scoring (spec §5.5), pure: neighbors in, a recommendation out.

For each model M among the K nearest neighbors:

* ``normalized_success_M`` = Σ(success_score_i × sample_size_i) / Σ(sample_size_i) over M's rows;
* ``avg_cost_M`` = the sample-size-weighted mean of M's rows' ``avg_cost`` (consistent with the
  success weighting: a 50-session row is 50 observations of cost too);
* ``normalized_cost_efficiency_M`` = (max_cost − cost_M) / (max_cost − min_cost), or 0 for every
  model when all costs are equal (the degenerate case: the decision falls to pure quality);
* ``score_M`` = (1 − cost_weight) × success + cost_weight × efficiency.

The top score is the recommendation; ``confidence`` = (top − runner_up) / top, 0 when top is 0; a
cluster with one model has runner-up 0, hence confidence 1 — the sample-size gate is what protects
against routing on one lucky row. ``sample_size`` of a recommendation or an option is the total
sample size behind that model. Ties break by model id so the result is deterministic. Rows with a
non-positive sample size or non-finite numbers carry no evidence and are ignored.

This is the spec's algorithm as written, kept for its unit tests and as the baseline the pattern
store (:mod:`actors.patterns`) improves on; the store returns the same :class:`Recommendation`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from attrs import frozen

from actors.patterns.types import Recommendation  # one type for slot 4, whichever scorer made it
from protocol.routing import ModelOption


@frozen
class Neighbor:
    primary_model: str
    success_score: float       # 0..1
    sample_size: int           # sessions contributing to this fingerprint row
    avg_cost: float            # USD per task


def _usable(n: Neighbor) -> bool:
    return (n.sample_size > 0 and math.isfinite(n.success_score) and math.isfinite(n.avg_cost))


def score_models(neighbors: Iterable[Neighbor], cost_weight: float) -> tuple[ModelOption, ...]:
    """Every model in the cluster with its §5.5 score, best first (ties: model id)."""
    weight: dict[str, int] = {}
    success: dict[str, float] = {}
    cost: dict[str, float] = {}
    for n in neighbors:
        if not _usable(n):
            continue
        w = n.sample_size
        weight[n.primary_model] = weight.get(n.primary_model, 0) + w
        success[n.primary_model] = success.get(n.primary_model, 0.0) + n.success_score * w
        cost[n.primary_model] = cost.get(n.primary_model, 0.0) + n.avg_cost * w
    if not weight:
        return ()
    avg_cost = {m: cost[m] / weight[m] for m in weight}
    hi, lo = max(avg_cost.values()), min(avg_cost.values())
    spread = hi - lo
    options = []
    for m, w in weight.items():
        efficiency = 0.0 if spread <= 0 else (hi - avg_cost[m]) / spread
        score = (1.0 - cost_weight) * (success[m] / w) + cost_weight * efficiency
        options.append(ModelOption(model=m, score=score, sample_size=w))
    options.sort(key=lambda o: (-o.score, o.model))
    return tuple(options)


def recommend(neighbors: Iterable[Neighbor], cost_weight: float) -> Recommendation | None:
    options = score_models(neighbors, cost_weight)
    if not options:
        return None
    top = options[0]
    runner_up = options[1].score if len(options) > 1 else 0.0
    confidence = 0.0 if top.score <= 0 else (top.score - runner_up) / top.score
    return Recommendation(model=top.model, score=top.score, confidence=confidence, sample_size=top.sample_size,
                          alternatives=options[1:])


def passes_gate(rec: Recommendation | None, min_confidence: float, min_sample_size: int) -> bool:
    """The pattern policy returns None below either threshold (spec §5.5)."""
    return rec is not None and rec.confidence >= min_confidence and rec.sample_size >= min_sample_size
