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

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from bench._common import ROOT, p99
from actors.patterns.store import StoreParams
from orchestrator.patterns_cli import DEFAULT_COST_WEIGHTS, route_eval

DATA = Path(os.environ.get("ROUTING_EVAL", "/work/shared/routing-eval"))
_trapz = getattr(np, "trapezoid", None) or getattr(np, "trapz")
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
RB_WEAK = "mistralai/mixtral-8x7b-chat"   # RouterBench's name for the same weak model
SWEEP = tuple(round(x, 3) for x in np.linspace(0.0, 1.0, 41))

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
              weights: Sequence[float], fingerprint: str, via_cli: bool, params: StoreParams | None = None) -> list[dict[str, object]]:
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


def router_points(lines: list[dict[str, object]], ids: set[str], outcomes: Outcomes) -> dict[float, tuple[float, float]]:
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
    best = [min(((-outcomes[(i, m)][0], outcomes[(i, m)][1]) for m in models)) for i in ids]
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
                weights: Sequence[float] = DEFAULT_COST_WEIGHTS, params: StoreParams | None = None) -> dict[str, object]:
    prompts, outcomes = load("routerbench_subset", text_column)
    models = sorted({m for _, m in outcomes})
    train = [p for p in prompts if p["split"] == "train"]
    test = [p for p in prompts if p["split"] == "test"]
    lines = decisions(train, outcome_rows(train, outcomes, models), test, weights, fingerprint, via_cli, params)
    groups = {"ALL": {p["prompt_id"] for p in test}}
    for p in test:
        groups.setdefault(p["category"], set()).add(p["prompt_id"])
    rng = random.Random(0)
    result: dict[str, object] = {"fingerprint": fingerprint, "text_column": text_column, "groups": {}}
    for g, ids in groups.items():
        singles = single_points(ids, outcomes, models)
        max_x = max(c for c, _ in singles.values())
        pts = router_points(lines, ids, outcomes)
        rnd = [outcomes[(i, rng.choice(models))] for i in sorted(ids)]
        oracle = oracle_point(ids, outcomes, models)
        share = {w: float(np.mean([d["source"] == "pattern" for d in lines if d["prompt_id"] in ids and d["cost_weight"] == w]))
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
    print(f"RouterBench subset, test split — fingerprint {r['fingerprint']}, text {r['text_column']}")
    for g, v in r["groups"].items():   # type: ignore[attr-defined]
        print(f"  {g:14s} n={v['n']:4d}  AIQ {v['aiq']:.4f}  zero {v['zero_aiq']:.4f}  random {v['random_aiq']:.4f}"
              f"  Δ {v['aiq'] - v['zero_aiq']:+.4f}  pattern share " +
              " ".join(f"{s:.2f}" for s in v["pattern_share"].values()))


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
                  "curve": list(zip(xs.tolist(), ys.tolist())), "random_check": float(rng.random() * 0)}
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
