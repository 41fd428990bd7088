"""Score `orchestrator patterns route-eval` on the public routing data (issue 14, DESIGN §4.7).

    python -m bench.route_eval routerbench [--fingerprint hashed] [--via-cli]
    python -m bench.route_eval routellm    # 5-fold CV, GPT-4 vs Mixtral (RouteLLM's metrics)
    python -m bench.route_eval cross       # train on one set, test on the other (the shared pair)
    python -m bench.route_eval micro       # one recommendation over 100k stored outcomes
    python -m bench.route_eval all --plots docs/   # everything + PNG cost–quality curves

Data: $ROUTING_EVAL (default /work/shared/routing-eval). It is read in place and never copied
into the repository; the temporary CSVs handed to the CLI with --via-cli live in a temp dir.

Metrics (definitions as in the data's baselines.py):

* AIQ (RouterBench): area under the non-decreasing upper convex hull of the router's
  (mean cost, mean quality) points over the cost-weight sweep, divided by the largest single-model
  cost; the zero router is the same over the single models.
* RouteLLM (two models): quality against the share of strong-model calls; the curve runs through
  (0, weak) and (1, strong) plus the router's sweep points. APGR = area under it minus the weak
  quality, over the strong−weak gap (random = 0.5); CPT(95 %) = the share of strong calls needed
  for 95 % of the strong model's quality.
"""
from __future__ import annotations

import os

# Small matrix–vector products lose more to OpenBLAS thread hand-offs than they gain on 2 shared
# cores (measured: p50 7.6 ms → 1.9 ms over 100k outcomes); the daemon should do the same.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402  (after the BLAS setting, before numpy loads)
import csv  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from collections.abc import Iterable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from bench._common import ROOT, p99
from actors.patterns.store import StoreParams
from orchestrator.patterns_cli import DEFAULT_COST_WEIGHTS, route_eval

DATA = Path(os.environ.get("ROUTING_EVAL", "/work/shared/routing-eval"))
_trapz = getattr(np, "trapezoid", None) or np.trapz
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
RB_WEAK = "mistralai/mixtral-8x7b-chat"   # RouterBench's name for the same weak model
# Two models: the strong one wins iff (1−w)·gain > w, i.e. gain > w/(1−w); gains live in ±0.5,
# so the sweep is dense where w/(1−w) is small.
SWEEP = tuple(sorted({round(float(x), 4) for x in np.r_[np.linspace(0.0, 0.4, 81), np.linspace(0.4, 1.0, 13)]}))

Outcomes = dict[tuple[str, str], tuple[float, float]]   # (prompt_id, model) → (quality, cost)


# --------------------------------------------------------------------------------- data

def load(name: str, text_column: str = "prompt_text") -> tuple[list[dict[str, str]], Outcomes]:
    csv.field_size_limit(1 << 30)
    with (DATA / name / "prompts.csv").open(newline="") as f:
        prompts = list(csv.DictReader(f))
    for p in prompts:
        p["text"] = p.get(text_column) or p["prompt_text"]
    outcomes: Outcomes = {}
    with (DATA / name / "outcomes.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            outcomes[(r["prompt_id"], r["model"])] = (float(r["quality"]), float(r["cost_usd"]))
    return prompts, outcomes


def outcome_rows(prompts: Iterable[dict[str, str]], outcomes: Outcomes, models: Sequence[str],
                 rename: dict[str, str] | None = None) -> list[tuple[str, str, float, float]]:
    rename = rename or {}
    rows = []
    for p in prompts:
        for m in models:
            if (p["prompt_id"], m) in outcomes:
                q, c = outcomes[(p["prompt_id"], m)]
                rows.append((p["prompt_id"], rename.get(m, m), q, c))
    return rows


def decisions(train: list[dict[str, str]], rows: list[tuple[str, str, float, float]], test: list[dict[str, str]],
              weights: Sequence[float], fingerprint: str, via_cli: bool,
              params: StoreParams | None = None) -> list[dict[str, object]]:
    """Route-eval's output lines, in process (fast, for tuning) or through the real CLI."""
    if not via_cli:
        return list(route_eval({p["prompt_id"]: p["text"] for p in train}, rows,
                               {p["prompt_id"]: p["text"] for p in test}, weights, fingerprint, params=params))
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        _write(t / "P.csv", ["prompt_id", "prompt_text"], [(p["prompt_id"], p["text"]) for p in train])
        _write(t / "O.csv", ["prompt_id", "model", "quality", "cost_usd"], rows)
        _write(t / "T.csv", ["prompt_id", "prompt_text"], [(p["prompt_id"], p["text"]) for p in test])
        cmd = [sys.executable, "-m", "orchestrator", "patterns", "route-eval", "--train-prompts", str(t / "P.csv"),
               "--train-outcomes", str(t / "O.csv"), "--test-prompts", str(t / "T.csv"),
               "--fingerprint", fingerprint, "--json"]
        for w in weights:
            cmd += ["--cost-weight", str(w)]
        start = time.monotonic()
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        print(f"  CLI run: {len(train)} train × {len(test)} test × {len(weights)} weights in "
              f"{time.monotonic() - start:.1f} s", file=sys.stderr)
        return [json.loads(line) for line in out.splitlines()]


def _write(path: Path, header: list[str], rows: Iterable[Sequence[object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# --------------------------------------------------------------------------------- metrics

def ndch(points: np.ndarray) -> np.ndarray:
    """Upper, non-decreasing convex hull of (cost, quality) points (RouterBench's AIQ.py)."""
    pts = sorted(map(tuple, points))
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    out = [hull[0]]
    for p in hull[1:]:
        if p[1] >= out[-1][1]:
            out.append(p)
    return np.array(out)


def aiq(points: np.ndarray, max_x: float) -> float:
    h = ndch(points)
    h = np.vstack([h, [max_x, h[-1, 1]]])
    return float(_trapz(h[:, 1], h[:, 0]) / max_x)


def router_points(lines: list[dict[str, object]], ids: set[str],
                  outcomes: Outcomes) -> dict[float, tuple[float, float]]:
    """cost weight → (mean cost, mean quality) over ``ids``."""
    acc: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for d in lines:
        if d["prompt_id"] in ids:
            q, c = outcomes[(str(d["prompt_id"]), str(d["model"]))]
            acc[float(d["cost_weight"])].append((c, q))   # type: ignore[arg-type]
    return {w: (float(np.mean([c for c, _ in v])), float(np.mean([q for _, q in v]))) for w, v in acc.items()}


def single_points(ids: set[str], outcomes: Outcomes, models: Sequence[str]) -> dict[str, tuple[float, float]]:
    return {m: (float(np.mean([outcomes[(i, m)][1] for i in ids])), float(np.mean([outcomes[(i, m)][0] for i in ids])))
            for m in models}


def oracle_point(ids: set[str], outcomes: Outcomes, models: Sequence[str]) -> tuple[float, float]:
    best = [min((-outcomes[(i, m)][0], outcomes[(i, m)][1]) for m in models) for i in ids]
    return float(np.mean([c for _, c in best])), float(np.mean([-q for q, _ in best]))


def two_model_curve(lines: list[dict[str, object]], ids: set[str], outcomes: Outcomes, strong: str,
                    weak: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(share of strong calls, quality) sorted by share, through (0, weak) and (1, strong)."""
    qw = float(np.mean([outcomes[(i, weak)][0] for i in ids]))
    qs = float(np.mean([outcomes[(i, strong)][0] for i in ids]))
    by_w: dict[float, list[tuple[int, float]]] = defaultdict(list)
    for d in lines:
        if d["prompt_id"] in ids:
            pid = str(d["prompt_id"])
            by_w[float(d["cost_weight"])].append((d["model"] == strong, outcomes[(pid, str(d["model"]))][0]))  # type: ignore[arg-type]
    pts = {(0.0, qw), (1.0, qs)}
    for v in by_w.values():
        pts.add((float(np.mean([s for s, _ in v])), float(np.mean([q for _, q in v]))))
    arr = np.array(sorted(pts))
    # several sweep points may share a share of calls: keep the best quality at each
    xs, ys = [], []
    for x, y in arr:
        if xs and x == xs[-1]:
            ys[-1] = max(ys[-1], y)
        else:
            xs.append(x)
            ys.append(y)
    return np.array(xs), np.array(ys), qw, qs


def apgr(xs: np.ndarray, ys: np.ndarray, qw: float, qs: float) -> float:
    return float((_trapz(ys, xs) - qw) / (qs - qw))


def pct_strong_for(xs: np.ndarray, ys: np.ndarray, target: float) -> float:
    """Smallest share of strong calls whose interpolated quality reaches ``target`` (100 if never)."""
    for i in range(len(xs)):
        if ys[i] >= target - 1e-12:
            if i == 0:
                return 100 * float(xs[0])
            x0, y0, x1, y1 = xs[i - 1], ys[i - 1], xs[i], ys[i]
            return 100 * float(x0 + (x1 - x0) * (target - y0) / (y1 - y0)) if y1 > y0 else 100 * float(x1)
    return 100.0


# --------------------------------------------------------------------------------- experiments

def routerbench(fingerprint: str = "hashed", via_cli: bool = False, text_column: str = "prompt_text",
                weights: Sequence[float] = DEFAULT_COST_WEIGHTS,
                params: StoreParams | None = None) -> dict[str, object]:
    prompts, outcomes = load("routerbench_subset", text_column)
    models = sorted({m for _, m in outcomes})
    train = [p for p in prompts if p["split"] == "train"]
    test = [p for p in prompts if p["split"] == "test"]
    lines = decisions(train, outcome_rows(train, outcomes, models), test, weights, fingerprint, via_cli, params)
    groups = {"ALL": {p["prompt_id"] for p in test}}
    for p in test:
        groups.setdefault(p["category"], set()).add(p["prompt_id"])
    rng = random.Random(0)
    result: dict[str, object] = {"fingerprint": fingerprint, "text_column": text_column, "weights": tuple(weights),
                                 "groups": {}}
    for g, ids in groups.items():
        singles = single_points(ids, outcomes, models)
        max_x = max(c for c, _ in singles.values())
        pts = router_points(lines, ids, outcomes)
        rnd = [outcomes[(i, rng.choice(models))] for i in sorted(ids)]
        oracle = oracle_point(ids, outcomes, models)
        share = {w: float(np.mean([d["source"] == "pattern" for d in lines
                                   if d["prompt_id"] in ids and d["cost_weight"] == w]))
                 for w in weights}
        result["groups"][g] = {   # type: ignore[index]
            "n": len(ids),
            "aiq": aiq(np.array(list(pts.values())), max_x),
            "zero_aiq": aiq(np.array(list(singles.values())), max_x),
            "random_aiq": aiq(np.array([[np.mean([c for _, c in rnd]), np.mean([q for q, _ in rnd])]]), max_x),
            "oracle": oracle, "points": pts, "singles": singles, "pattern_share": share,
        }
    return result


def print_routerbench(r: dict[str, object]) -> None:
    print(f"RouterBench subset, test split — fingerprint {r['fingerprint']}, text {r['text_column']}, "
          f"{len(r['weights'])} cost weights")   # type: ignore[arg-type]
    for g, v in r["groups"].items():   # type: ignore[attr-defined]
        print(f"  {g:14s} n={v['n']:4d}  AIQ {v['aiq']:.4f}  zero {v['zero_aiq']:.4f}  random {v['random_aiq']:.4f}"
              f"  Δ {v['aiq'] - v['zero_aiq']:+.4f}  pattern share " + _shares(list(v["pattern_share"].values())))


def _shares(shares: list[float]) -> str:
    if len(shares) <= 10:
        return " ".join(f"{s:.2f}" for s in shares)
    return f"min {min(shares):.2f} mean {float(np.mean(shares)):.2f}"


def _two_model_summary(lines: list[dict[str, object]], groups: dict[str, set[str]], outcomes: Outcomes,
                       strong: str, weak: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for g, ids in groups.items():
        xs, ys, qw, qs = two_model_curve(lines, ids, outcomes, strong, weak)
        rng = np.random.default_rng(0)
        # random router: each prompt to the strong model with probability x — the chord (0,qw)–(1,qs)
        rand95 = 100 * max(0.0, (0.95 * qs - qw) / (qs - qw)) if qs > qw else 0.0
        out[g] = {"n": len(ids), "weak": qw, "strong": qs, "apgr": apgr(xs, ys, qw, qs),
                  "pct_strong_95": pct_strong_for(xs, ys, 0.95 * qs), "random_pct_strong_95": rand95,
                  "curve": list(zip(xs.tolist(), ys.tolist(), strict=True)), "random_check": float(rng.random() * 0)}
    return out


def routellm(fingerprint: str = "hashed", via_cli: bool = False, folds: int = 5,
             weights: Sequence[float] = SWEEP, params: StoreParams | None = None) -> dict[str, object]:
    """k-fold CV over RouteLLM's decontaminated eval prompts (it never trains on them; we must)."""
    prompts, outcomes = load("routellm")
    prompts = [p for p in prompts if p["contaminated"] != "True"]
    random.Random(14).shuffle(prompts)
    lines: list[dict[str, object]] = []
    for f in range(folds):
        test = prompts[f::folds]
        test_ids = {p["prompt_id"] for p in test}
        train = [p for p in prompts if p["prompt_id"] not in test_ids]
        lines += decisions(train, outcome_rows(train, outcomes, [STRONG, WEAK]), test, weights, fingerprint,
                           via_cli, params)
    groups = {"ALL": {p["prompt_id"] for p in prompts}}
    for p in prompts:
        groups.setdefault(p["benchmark"], set()).add(p["prompt_id"])
    return {"fingerprint": fingerprint, "folds": folds,
            "groups": _two_model_summary(lines, groups, outcomes, STRONG, WEAK)}


def cross(fingerprint: str = "hashed", via_cli: bool = False, weights: Sequence[float] = SWEEP,
          params: StoreParams | None = None) -> dict[str, object]:
    """Train on one set, test on the other, over the model pair both share (GPT-4 vs Mixtral)."""
    rb_p, rb_o = load("routerbench_subset", "prompt_text")
    rl_p, rl_o = load("routellm")
    rl_p = [p for p in rl_p if p["contaminated"] != "True"]
    # one model namespace: RouterBench's Mixtral chat model is RouteLLM's Mixtral-8x7B-Instruct
    rb_o = {(pid, WEAK if m == RB_WEAK else m): v for (pid, m), v in rb_o.items()}
    res: dict[str, object] = {"fingerprint": fingerprint}
    for name, (tr_p, tr_o), (te_p, te_o), key in [
            ("routerbench→routellm", (rb_p, rb_o), (rl_p, rl_o), "benchmark"),
            ("routellm→routerbench", (rl_p, rl_o), (rb_p, rb_o), "category")]:
        lines = decisions(tr_p, outcome_rows(tr_p, tr_o, [STRONG, WEAK]), te_p, weights, fingerprint, via_cli,
                          params)
        groups = {"ALL": {p["prompt_id"] for p in te_p}}
        for p in te_p:
            groups.setdefault(p[key], set()).add(p["prompt_id"])
        res[name] = _two_model_summary(lines, groups, te_o, STRONG, WEAK)
    return res


def print_two_model(title: str, groups: dict[str, dict[str, object]]) -> None:
    print(title)
    for g, v in groups.items():
        print(f"  {g:14s} n={v['n']:5d}  weak {v['weak']:.3f} strong {v['strong']:.3f}  APGR {v['apgr']:.3f}  "
              f"%strong for 95% {v['pct_strong_95']:.1f} (random {v['random_pct_strong_95']:.1f})")


# --------------------------------------------------------------------------------- micro-benchmark

def micro(n_outcomes: int = 100_000, queries: int = 2000, fingerprint: str = "hashed") -> dict[str, float]:
    """One recommendation over ``n_outcomes`` stored outcomes (each its own text: the worst case for
    the scan), fingerprinting included; baseline: fingerprinting alone, rounds interleaved."""
    from actors.patterns.fingerprint import make_fingerprinter
    from actors.patterns.store import PatternStore
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(5000)] + "fix test refactor parser api database query deploy docs".split()
    def text() -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 60)))
    fp = make_fingerprinter(fingerprint)
    store = PatternStore(fp)
    models = ["a:small", "a:medium", "a:large", "b:small", "b:large"]
    prices = [0.0002, 0.001, 0.005, 0.0003, 0.01]
    t0 = time.perf_counter()
    texts = [text() for _ in range(n_outcomes)]
    for i, vec in enumerate(fp.many(texts)):
        m = i % len(models)
        store.add_outcome(vec, models[m], float(rng.random() < 0.5 + 0.08 * m), prices[m])
    build_s = time.perf_counter() - t0
    qs = [text() for _ in range(queries)]
    rec_us, fp_us = [], []
    for q in qs[:50]:   # warm-up
        store.recommend(q)
    for q in qs:
        t = time.perf_counter()
        fp(q)
        fp_us.append((time.perf_counter() - t) * 1e6)
        t = time.perf_counter()
        store.recommend(q, cost_weight=0.05)
        rec_us.append((time.perf_counter() - t) * 1e6)
    return {"outcomes": len(store), "build_s": build_s, "rec_p50_us": float(np.median(rec_us)),
            "rec_p99_us": p99(rec_us), "fp_p50_us": float(np.median(fp_us)), "fp_p99_us": p99(fp_us),
            "ratio_p50": float(np.median(rec_us) / np.median(fp_us)), "loadavg": os.getloadavg()[0]}


def cli_timing() -> dict[str, float]:
    """DESIGN §4.7's budget: 3,000 train prompts × 11 models, 1,500 test prompts × 8 weights, via the CLI."""
    rb_p, rb_o = load("routerbench_subset", "prompt_text")
    models = sorted({m for _, m in rb_o})
    train = rb_p[:3000]
    rl_p, _ = load("routellm")
    test = random.Random(3).sample(rl_p, 1500)
    start = time.monotonic()
    lines = decisions(train, outcome_rows(train, rb_o, models), test, DEFAULT_COST_WEIGHTS, "hashed", True)
    return {"seconds": time.monotonic() - start, "lines": len(lines), "train_prompts": len(train),
            "models": len(models), "test_prompts": len(test), "loadavg": os.getloadavg()[0]}


# --------------------------------------------------------------------------------- plots

def plot_routerbench(r: dict[str, object], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = r["groups"]   # type: ignore[assignment]
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4.2))
    for ax, (g, v) in zip(axes, groups.items(), strict=True):   # type: ignore[attr-defined]
        singles = np.array(list(v["singles"].values())) * [1e3, 1]
        zero = ndch(singles)
        pts = np.array(list(v["points"].values())) * [1e3, 1]
        hull = ndch(pts)
        ax.scatter(singles[:, 0], singles[:, 1], c="grey", s=14, label="single models")
        ax.plot(zero[:, 0], zero[:, 1], c="grey", ls="--", label=f"zero router (AIQ {v['zero_aiq']:.3f})")
        ax.scatter(pts[:, 0], pts[:, 1], c="C0", s=18)
        ax.plot(hull[:, 0], hull[:, 1], c="C0", label=f"pattern store (AIQ {v['aiq']:.3f})")
        oc, oq = v["oracle"]
        ax.scatter([oc * 1e3], [oq], c="C3", marker="*", s=80, label="oracle")
        ax.set_xscale("log")
        ax.set_title(f"{g} (n={v['n']})")
        ax.set_xlabel("mean cost per prompt (mUSD, log)")
        ax.set_ylabel("mean quality")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"RouterBench subset, test split — fingerprint {r['fingerprint']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_two_model(panels: dict[str, dict[str, dict[str, object]]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cells = [(name, g, v) for name, groups in panels.items() for g, v in groups.items()]
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 4))
    for ax, (name, g, v) in zip(np.atleast_1d(axes), cells, strict=True):
        xs, ys = zip(*v["curve"], strict=True)   # type: ignore[call-overload]
        ax.plot(np.array(xs) * 100, ys, c="C0", marker=".", label=f"pattern store (APGR {v['apgr']:.2f})")
        ax.plot([0, 100], [v["weak"], v["strong"]], c="grey", ls="--", label="random (APGR 0.50)")
        ax.axhline(0.95 * float(v["strong"]), c="C3", lw=0.8, ls=":", label="95 % of GPT-4")  # type: ignore[arg-type]
        ax.set_title(f"{name}: {g} (n={v['n']})", fontsize=9)
        ax.set_xlabel("% GPT-4 calls")
        ax.set_ylabel("mean quality")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------- main

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.route_eval", description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["routerbench", "routellm", "cross", "micro", "timing", "all"])
    ap.add_argument("--fingerprint", default="hashed")
    ap.add_argument("--via-cli", action="store_true", help="run the real CLI in a subprocess (slower)")
    ap.add_argument("--plots", type=Path, help="write PNG plots into this directory")
    ap.add_argument("--json", type=Path, help="write every number as JSON")
    a = ap.parse_args(argv)
    todo = ["routerbench", "routellm", "cross", "micro", "timing"] if a.what == "all" else [a.what]
    results: dict[str, object] = {}
    suffix = "" if a.fingerprint == "hashed" else f"_{a.fingerprint}"
    for what in todo:
        print(f"[{what}] load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        if what == "routerbench":
            # The 8 default weights (DESIGN §4.7), then the dense sweep RouterBench's AIQ assumes (the
            # router's trade-off swept finely; the zero router has 11 single-model points) — the
            # same sweep the two-model evaluations use.
            print_routerbench(routerbench(a.fingerprint, a.via_cli))
            r = results[what] = routerbench(a.fingerprint, a.via_cli, weights=SWEEP)
            print_routerbench(r)
            if a.plots:
                plot_routerbench(r, a.plots / f"patterns_routerbench{suffix}.png")
        elif what == "routellm":
            r = results[what] = routellm(a.fingerprint, a.via_cli)
            print_two_model("RouteLLM (GPT-4 vs Mixtral), 5-fold CV", r["groups"])   # type: ignore[arg-type]
            if a.plots:
                plot_two_model({"RouteLLM 5-fold": r["groups"]}, a.plots / f"patterns_routellm{suffix}.png",   # type: ignore[dict-item]
                               f"RouteLLM eval data, 5-fold CV — fingerprint {a.fingerprint}")
        elif what == "cross":
            r = results[what] = cross(a.fingerprint, a.via_cli)
            for k, v in r.items():
                if k != "fingerprint":
                    print_two_model(f"cross-set {k}", v)   # type: ignore[arg-type]
            if a.plots:
                plot_two_model({k: {"ALL": v["ALL"]} for k, v in r.items() if k != "fingerprint"},   # type: ignore[index]
                               a.plots / f"patterns_cross{suffix}.png",
                               f"Trained on one set, tested on the other — fingerprint {a.fingerprint}")
        elif what == "micro":
            m = results[what] = micro(fingerprint=a.fingerprint)
            print(f"micro: recommendation over {m['outcomes']} outcomes: p50 {m['rec_p50_us']:.0f} µs, "
                  f"p99 {m['rec_p99_us']:.0f} µs; fingerprint alone p50 {m['fp_p50_us']:.0f} µs, "
                  f"p99 {m['fp_p99_us']:.0f} µs; ratio {m['ratio_p50']:.1f}×; load {m['loadavg']:.2f}")
        elif what == "timing":
            t = results[what] = cli_timing()
            print(f"CLI: {t['train_prompts']} train × {t['models']} models, {t['test_prompts']} test × 8 weights: "
                  f"{t['seconds']:.1f} s ({t['lines']} lines); load {t['loadavg']:.2f}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
