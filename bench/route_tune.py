"""Cross-validate the pattern store's parameters on the RouterBench subset's train split only.

    python -m bench.route_tune            # prints the grid, best pooled AIQ first

5 folds over the train split; per fold the k-NN estimate of the store (kernel sim^power over the
top k, similarity floor 0.2, shrinkage α toward the fold's model means) is routed at the 8
default cost weights and scored by AIQ, pooled and per benchmark. Vectorised re-implementation of
the store's estimate (no gate: the gate only hands thin cases to the prior), so the grid runs in
a minute instead of an hour. The test split is never read.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import itertools  # noqa: E402

import numpy as np  # noqa: E402

from actors.patterns.fingerprint import HashedFingerprinter  # noqa: E402
from bench.route_eval import aiq, load  # noqa: E402
from orchestrator.patterns_cli import DEFAULT_COST_WEIGHTS  # noqa: E402

CATEGORIES = ("arc-challenge", "mbpp", "winogrande")


def main() -> None:
    prompts, outcomes = load("routerbench_subset", "prompt_text")
    models = sorted({m for _, m in outcomes})
    train = [p for p in prompts if p["split"] == "train"]
    vecs = HashedFingerprinter().many([p["text"] for p in train])
    y = np.array([[outcomes[(p["prompt_id"], m)][0] for m in models] for p in train])
    c = np.array([[outcomes[(p["prompt_id"], m)][1] for m in models] for p in train])
    cat = np.array([p["category"] for p in train])
    fold = np.random.default_rng(1).integers(0, 5, len(train))
    weights = np.array(DEFAULT_COST_WEIGHTS)

    def run(k: int, power: float, alpha: float, scale: str) -> dict[str, float]:
        per_fold = []
        for f in range(5):
            te, tr = fold == f, fold != f
            sims = vecs[te] @ vecs[tr].T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            s = np.take_along_axis(sims, top, 1)
            w = np.where(s < 0.2, 0.0, s) ** power
            mu, cost = y[tr].mean(0), c[tr].mean(0)
            q = (np.einsum("ik,ikm->im", w, y[tr][top]) + alpha * mu) / (w.sum(1, keepdims=True) + alpha)
            hi, lo = cost.max(), cost.min()
            eff = (hi - cost) / (hi - lo) if scale == "linear" else np.log(hi / cost) / np.log(hi / lo)
            idx = np.where(te)[0]
            res = {}
            for name, mask in [("ALL", np.ones(len(idx), bool))] + [(g, cat[idx] == g) for g in CATEGORIES]:
                ii = idx[mask]
                pts = []
                for cw in weights:
                    choice = ((1 - cw) * q[mask] + cw * eff).argmax(1)
                    pts.append((c[ii, choice].mean(), y[ii, choice].mean()))
                res[name] = aiq(np.array(pts), c[ii].mean(0).max())
            per_fold.append(res)
        return {g: float(np.mean([r[g] for r in per_fold])) for g in per_fold[0]}

    rows = []
    for k, power, alpha, scale in itertools.product((32, 64, 128, 256), (1, 2, 4), (1, 2, 4, 16), ("linear", "log")):
        rows.append(((k, power, alpha, scale), run(k, power, alpha, scale)))
    rows.sort(key=lambda r: -r[1]["ALL"])
    print("k power alpha scale | pooled " + " ".join(CATEGORIES))
    for (k, power, alpha, scale), r in rows:
        per_category = " ".join(f"{r[g]:.4f}" for g in CATEGORIES)
        print(f"{k:4d} {power:3g} {alpha:4g} {scale:6s} | {r['ALL']:.4f} " + per_category)


if __name__ == "__main__":
    main()
