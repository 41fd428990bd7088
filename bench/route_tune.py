"""Cross-validate the pattern store's parameters on the RouterBench subset's train split only.

    python -m bench.route_tune            # prints the grid, best pooled AIQ first
    python -m bench.route_tune heads [--fingerprint minilm] [--cache DIR]
        # learned correctness heads (logistic, matrix factorisation, similarity-weighted ranking)
        # against the store's k-NN estimate — docs/patterns.md "Accuracy pass 3"

5 folds over the train split; per fold the k-NN estimate of the store (kernel sim^power over the
top k, similarity floor 0.2, shrinkage α toward the fold's model means) is routed at the 8
default cost weights and scored by AIQ, pooled and per benchmark. Vectorised re-implementation of
the store's estimate (no gate: the gate only hands thin cases to the prior), so the grid runs in
a minute instead of an hour. The test split is never read.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from actors.patterns.fingerprint import HashedFingerprinter, make_fingerprinter  # noqa: E402
from bench.route_eval import RB_WEAK, STRONG, SWEEP, WEAK, aiq, load  # noqa: E402
from orchestrator.patterns_cli import DEFAULT_COST_WEIGHTS  # noqa: E402

CATEGORIES = ("arc-challenge", "mbpp", "winogrande")


def grid() -> None:
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


# ------------------------------------------------------------------------------------- heads
# Issue 14's accuracy pass 3: does a learned per-model correctness model find per-question signal
# the k-NN misses? Every choice below is scored by cross-validation: the RouterBench train split
# (5 folds, and leave-one-benchmark-out as a stand-in for a distribution shift), RouteLLM's own 5
# folds; the cross-set figures (train on one set, test on the other) are reported, never tuned on.

Estimator = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]   # (X train, Y train, X query) → Q


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))))


def _adam(params: list[np.ndarray], grad: Callable[[list[np.ndarray]], Sequence[np.ndarray]], steps: int,
          lr: float) -> None:
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        for i, (p, g) in enumerate(zip(params, grad(params), strict=True)):
            m1[i] = 0.9 * m1[i] + 0.1 * g
            m2[i] = 0.999 * m2[i] + 0.001 * g * g
            p -= lr * (m1[i] / (1.0 - 0.9 ** t)) / (np.sqrt(m2[i] / (1.0 - 0.999 ** t)) + 1e-8)


def _logit_mean(y: np.ndarray) -> np.ndarray:
    mu = np.clip(y.mean(axis=0), 1e-3, 1.0 - 1e-3)
    return np.asarray(np.log(mu / (1.0 - mu)))


def logistic_head(l2: float = 1e-2, steps: int = 300) -> Estimator:
    """Per-model logistic regression on the fingerprint (soft labels: MT-Bench grades are 0..1);
    L2 pulls each model toward its intercept, i.e. its store-wide mean."""
    def fit(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
        w = np.zeros((x.shape[1], y.shape[1]))
        b = _logit_mean(y)
        def grad(ps: list[np.ndarray]) -> Sequence[np.ndarray]:
            r = (_sigmoid(x @ ps[0] + ps[1]) - y) / len(y)
            return x.T @ r + l2 * ps[0], r.sum(axis=0)
        _adam([w, b], grad, steps, 0.05)
        return _sigmoid(xq @ w + b)
    return fit


def mf_head(rank: int = 8, l2: float = 1e-3, steps: int = 400) -> Estimator:
    """RouteLLM's matrix-factorisation router for many models: logit = v_model · (P x) + b_model,
    one learned projection P shared by all models (a bilinear score of prompt and model)."""
    def fit(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(0)
        proj, v, b = rng.normal(0, 0.1, (x.shape[1], rank)), rng.normal(0, 0.1, (y.shape[1], rank)), _logit_mean(y)
        def grad(ps: list[np.ndarray]) -> Sequence[np.ndarray]:
            z = x @ ps[0]
            r = (_sigmoid(z @ ps[1].T + ps[2]) - y) / len(y)
            return x.T @ (r @ ps[1]) + l2 * ps[0], r.T @ z + l2 * ps[1], r.sum(axis=0)
        _adam([proj, v, b], grad, steps, 0.02)
        return _sigmoid((xq @ proj) @ v.T + b)
    return fit


def _knn_parts(x: np.ndarray, y: np.ndarray, xq: np.ndarray, k: int = 256, power: float = 2.0,
               floor: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The store's kernel: Σ w·y and Σ w over the top k, w = sim^power, sims under the floor weigh 0."""
    k = min(k, len(x))
    ss, ns = [], []
    for lo in range(0, len(xq), 2000):
        sims = xq[lo:lo + 2000] @ x.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(sims, top, 1)
        w = np.where(s < floor, 0.0, s) ** power
        ss.append(np.einsum("ik,ikm->im", w, y[top]))
        ns.append(w.sum(axis=1, keepdims=True))
    return np.vstack(ss), np.vstack(ns)


def knn(alpha: float = 2.0, floor: float = 0.2) -> Estimator:
    """The shipped store's estimate: shrinkage toward each model's mean with α pseudo-outcomes."""
    def fit(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
        s, n = _knn_parts(x, y, xq, floor=floor)
        return (s + alpha * y.mean(axis=0)) / (n + alpha)
    return fit


def knn_to_head(head: Estimator, alpha: float = 2.0, floor: float = 0.2) -> Estimator:
    """The k-NN shrunk toward the head's prediction instead of the mean; with no neighbour above
    the floor the head alone decides (a learned prior)."""
    def fit(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
        s, n = _knn_parts(x, y, xq, floor=floor)
        return (s + alpha * head(x, y, xq)) / (n + alpha)
    return fit


def similarity_weighted(gamma: float = 100.0) -> Estimator:
    """RouteLLM's similarity-weighted ranking: every stored outcome weighs γ^(1 + sim/max sim)."""
    def fit(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
        out = np.empty((len(xq), y.shape[1]))
        for lo in range(0, len(xq), 1000):
            s = xq[lo:lo + 1000] @ x.T
            w = np.exp(np.log(gamma) * (s / np.maximum(s.max(axis=1, keepdims=True), 1e-6) - 1.0))
            out[lo:lo + 1000] = (w @ y) / w.sum(axis=1, keepdims=True)
        return out
    return fit


def _ranking(gain: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> tuple[float, float]:
    """APGR and % strong calls for 95 % of the strong model's quality, sending the prompts with the
    largest estimated gain to the strong model first (every threshold: the dense-sweep limit)."""
    order = np.argsort(-gain, kind="stable")
    xs = np.arange(len(gain) + 1) / len(gain)
    quality = weak.mean() + np.concatenate([[0.0], np.cumsum((strong - weak)[order])]) / len(gain)
    qs, qw = strong.mean(), weak.mean()
    apgr = (float(np.sum((quality[1:] + quality[:-1]) / 2) / len(gain)) - qw) / (qs - qw)
    return apgr, 100.0 * float(xs[int(np.argmax(quality >= 0.95 * qs - 1e-12))])


def _cv(est: Estimator, x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    q = np.empty_like(y)
    for f in np.unique(fold):
        te = fold == f
        q[te] = est(x[~te], y[~te], x[te])
    return q


def _fingerprints(name: str, key: str, texts: list[str], cache: Path | None) -> np.ndarray:
    path = cache / f"{name}_{key}.npy" if cache else None
    if path and path.exists():
        return np.asarray(np.load(path), dtype=np.float64)
    vecs = HashedFingerprinter().many(texts) if name == "hashed" else make_fingerprinter(name).many(texts)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vecs)
    return np.asarray(vecs, dtype=np.float64)


def heads(argv: Sequence[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.route_tune heads")
    ap.add_argument("--fingerprint", default="hashed")
    ap.add_argument("--rb-text", default="prompt_text",
                    help="RouterBench column to fingerprint (query_text: without the few-shot block)")
    ap.add_argument("--cache", type=Path, help="keep fingerprints here between runs (outside the repository)")
    a = ap.parse_args(argv)
    fp = a.fingerprint
    head = logistic_head()
    estimators: dict[str, Estimator] = {
        "k-NN (shipped)": knn(), "logistic head": head, "k-NN → head α 2": knn_to_head(head),
        "k-NN → head α 8": knn_to_head(head, 8.0), "MF rank 8": mf_head(), "SW ranking γ 1e4": similarity_weighted(1e4),
    }
    # RouterBench, train split only: 5-fold AIQ over 11 models, then leave one benchmark out (GPT-4 vs Mixtral)
    prompts, outcomes = load("routerbench_subset", a.rb_text)
    models = sorted({m for _, m in outcomes})
    train = [p for p in prompts if p["split"] == "train"]
    x = _fingerprints(fp, f"rb_train_{a.rb_text}", [p["text"] for p in train], a.cache)
    y = np.array([[outcomes[(p["prompt_id"], m)][0] for m in models] for p in train])
    c = np.array([[outcomes[(p["prompt_id"], m)][1] for m in models] for p in train])
    cat = np.array([p["category"] for p in train])
    fold = np.random.default_rng(1).integers(0, 5, len(train))
    cost = c.mean(axis=0)
    eff = np.log(cost.max() / cost) / np.log(cost.max() / cost.min())
    pair = [models.index(STRONG), models.index(RB_WEAK)]
    print(f"RouterBench train split, fingerprint {fp} on {a.rb_text}: 5-fold AIQ (93 weights; 8 weights) "
          f"pooled [ARC MBPP Winogrande] | leave-one-benchmark-out APGR GPT-4 vs Mixtral [ARC MBPP Winogrande]")
    for name, est in estimators.items():
        q = _cv(est, x, y, fold)
        res = []
        for weights in (SWEEP, DEFAULT_COST_WEIGHTS):
            per = {}
            for g, mask in [("ALL", np.ones(len(y), bool))] + [(g, cat == g) for g in CATEGORIES]:
                rows = np.arange(mask.sum())
                pts = [(c[mask][rows, ch].mean(), y[mask][rows, ch].mean())
                       for ch in (((1 - w) * q[mask] + w * eff).argmax(axis=1) for w in weights)]
                per[g] = aiq(np.array(pts), c[mask].mean(axis=0).max())
            res.append(per)
        lobo = [_ranking(*(lambda qq, te: (qq[:, 0] - qq[:, 1], y[te][:, pair[0]], y[te][:, pair[1]]))(
            est(x[cat != g], y[cat != g][:, pair], x[cat == g]), cat == g))[0] for g in CATEGORIES]
        print(f"  {name:18s} {res[0]['ALL']:.4f} [{' '.join(f'{res[0][g]:.4f}' for g in CATEGORIES)}]; "
              f"{res[1]['ALL']:.4f} | {np.mean(lobo):.3f} [{' '.join(f'{v:.3f}' for v in lobo)}]", flush=True)
    # RouteLLM: its own 5 folds (all three benchmarks mixed), exact ranking curve
    rl, rl_out = load("routellm")
    rl = [p for p in rl if p["contaminated"] != "True"]
    xr = _fingerprints(fp, "rl", [p["text"] for p in rl], a.cache)
    yr = np.array([[rl_out[(p["prompt_id"], m)][0] for m in (STRONG, WEAK)] for p in rl])
    bench = np.array([p["benchmark"] for p in rl])
    groups = [("ALL", np.ones(len(rl), bool))] + [(b, bench == b) for b in ("mmlu", "gsm8k", "mt_bench")]
    print(f"RouteLLM 5-fold CV, fingerprint {fp}: APGR / % GPT-4 for 95 % — pooled, MMLU, GSM8K, MT-Bench")
    rl_fold = np.random.default_rng(14).integers(0, 5, len(rl))
    for name, est in estimators.items():
        if name.startswith("MF"):
            continue   # two models: a rank ≥ 2 factorisation is the per-model logistic head
        q = _cv(est, xr, yr, rl_fold)
        cells = [_ranking(q[m, 0] - q[m, 1], yr[m, 0], yr[m, 1]) for _, m in groups]
        print(f"  {name:18s} " + "  ".join(f"{g} {ap:.3f}/{pct:.1f}"
                                            for (g, _), (ap, pct) in zip(groups, cells, strict=True)), flush=True)
    # Cross-set (reported, not tuned on): the shared pair, trained on one whole set
    all_rb = prompts
    xa = _fingerprints(fp, f"rb_all_{a.rb_text}", [p["text"] for p in all_rb], a.cache)
    ya = np.array([[outcomes[(p["prompt_id"], m)][0] for m in (STRONG, RB_WEAK)] for p in all_rb])
    cat_a = np.array([p["category"] for p in all_rb])
    print("Cross-set APGR, pooled [per benchmark]: RouterBench → RouteLLM | RouteLLM → RouterBench")
    for name in ("k-NN (shipped)", "logistic head", "k-NN → head α 2", "SW ranking γ 1e4"):
        est = estimators[name]
        qa, qb = est(xa, ya, xr), est(xr, yr, xa)
        to_rl = [_ranking(qa[m, 0] - qa[m, 1], yr[m, 0], yr[m, 1])[0] for _, m in groups]
        to_rb = [_ranking(qb[m, 0] - qb[m, 1], ya[m, 0], ya[m, 1])[0]
                 for m in [np.ones(len(ya), bool)] + [cat_a == g for g in CATEGORIES]]
        print(f"  {name:18s} {to_rl[0]:.3f} [{' '.join(f'{v:.3f}' for v in to_rl[1:])}] | "
              f"{to_rb[0]:.3f} [{' '.join(f'{v:.3f}' for v in to_rb[1:])}]", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["heads"]:
        heads(sys.argv[2:])
    else:
        grid()


if __name__ == "__main__":
    main()
