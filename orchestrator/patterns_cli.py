"""`orchestrator patterns route-eval` (DESIGN §4.7): offline evaluation of the pattern store.

Builds a fresh :class:`~actors.patterns.store.PatternStore` from training CSVs only, then prints one
JSON line per test prompt × cost weight. No daemon, no state database.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from collections.abc import Callable, Iterator, Sequence

from actors.patterns import DEFAULT_FINGERPRINT, FINGERPRINT_NAMES

if TYPE_CHECKING:
    from actors.patterns.store import PatternStore, StoreParams

DEFAULT_COST_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
PROMPT_COLUMNS = ("prompt_id", "prompt_text")
OUTCOME_COLUMNS = ("prompt_id", "model", "quality", "cost_usd")


class InputError(Exception):
    """Bad input files: one line for the user, exit 1."""


def add_subparser(sub: argparse._SubParsersAction) -> None:
    patterns = sub.add_parser("patterns", help="the pattern store: stats, offline evaluation")
    psub = patterns.add_subparsers(dest="patterns_command", required=True)
    st = psub.add_parser("stats", help="the daemon's pattern store: outcomes, models, fingerprint")
    st.add_argument("--json", action="store_true")
    ev = psub.add_parser("route-eval", help="build a store from training CSVs and route test prompts")
    ev.add_argument("--train-prompts", required=True, type=Path, metavar="P.csv")
    ev.add_argument("--train-outcomes", required=True, type=Path, metavar="O.csv")
    ev.add_argument("--test-prompts", required=True, type=Path, metavar="T.csv")
    ev.add_argument("--cost-weight", action="append", type=float, dest="cost_weights", metavar="W",
                    help="repeatable; default 0 0.05 0.1 0.2 0.3 0.5 0.7 1.0")
    ev.add_argument("--fingerprint", default=DEFAULT_FINGERPRINT, choices=FINGERPRINT_NAMES)
    ev.add_argument("--json", action="store_true", help="one JSON object per line (the only output format)")


def run(args: argparse.Namespace) -> int:
    if args.patterns_command == "stats":
        import trio
        return trio.run(_stats, args.json)
    if args.patterns_command != "route-eval":
        raise AssertionError(args.patterns_command)
    weights = tuple(args.cost_weights) if args.cost_weights else DEFAULT_COST_WEIGHTS
    # numpy and the store load only when this command runs, not for every CLI call.
    from actors.patterns.fingerprint import FingerprintUnavailable
    try:
        bad = [w for w in weights if not 0.0 <= w <= 1.0]
        if bad:
            raise InputError(f"--cost-weight must be in [0, 1], got {bad[0]}")
        train_prompts = read_prompts(args.train_prompts)
        outcomes = read_outcomes(args.train_outcomes)
        test_prompts = read_prompts(args.test_prompts)
        for line in route_eval(train_prompts, outcomes, test_prompts, weights, args.fingerprint, progress=sys.stderr):
            sys.stdout.write(json.dumps(line) + "\n")
    except (InputError, FingerprintUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


async def _stats(as_json: bool) -> int:
    from .client import open_client
    from .rating import render_stats, stats
    async with open_client() as client:
        print(render_stats(await stats(client), as_json))
    return 0


# --- input ----------------------------------------------------------------------------------------

def _rows(path: Path, needed: Sequence[str]) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    csv.field_size_limit(1 << 30)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in needed if c not in (reader.fieldnames or ())]
            if missing:
                raise InputError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(needed)})")
            yield from reader
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None


def read_prompts(path: Path) -> dict[str, str]:
    prompts: dict[str, str] = {}
    for row in _rows(path, PROMPT_COLUMNS):
        prompts[row["prompt_id"]] = row["prompt_text"] or ""
    if not prompts:
        raise InputError(f"{path}: no prompts")
    return prompts


def read_outcomes(path: Path) -> list[tuple[str, str, float, float]]:
    out = []
    for n, row in enumerate(_rows(path, OUTCOME_COLUMNS), start=2):
        try:
            quality, cost = float(row["quality"]), float(row["cost_usd"])
        except ValueError:
            raise InputError(f"{path}:{n}: quality and cost_usd must be numbers") from None
        if not (0.0 <= quality <= 1.0) or not cost >= 0.0:
            raise InputError(f"{path}:{n}: quality must be in [0, 1] and cost_usd ≥ 0")
        out.append((row["prompt_id"], row["model"], quality, cost))
    if not out:
        raise InputError(f"{path}: no outcomes")
    return out


# --- evaluation -----------------------------------------------------------------------------------

def build_store(prompts: dict[str, str], outcomes: Sequence[tuple[str, str, float, float]],
                fingerprint: str = DEFAULT_FINGERPRINT, params: StoreParams | None = None) -> PatternStore:
    from actors.patterns.fingerprint import make_fingerprinter
    from actors.patterns.store import PatternStore
    store = PatternStore(make_fingerprinter(fingerprint), params)
    used = sorted({pid for pid, *_ in outcomes if pid in prompts})
    if not used:
        raise InputError("no training outcome matches a training prompt_id")
    vecs = dict(zip(used, store.fp.many([prompts[p] for p in used]), strict=True))
    for pid, model, quality, cost in outcomes:
        vec = vecs.get(pid)
        if vec is not None:
            store.add_outcome(vec, model, quality, cost)
    return store


def route_eval(train_prompts: dict[str, str], outcomes: Sequence[tuple[str, str, float, float]],
               test_prompts: dict[str, str], weights: Sequence[float], fingerprint: str = DEFAULT_FINGERPRINT,
               progress: TextIO | None = None, params: StoreParams | None = None) -> Iterator[dict[str, object]]:
    start = time.monotonic()
    say: Callable[[str], None] = (lambda s: print(s, file=progress, flush=True)) if progress else (lambda s: None)
    store = build_store(train_prompts, outcomes, fingerprint, params)
    say(f"route-eval: store built from {len(store)} outcomes, {len(store.models)} models "
        f"({time.monotonic() - start:.1f} s)")
    ids = list(test_prompts)
    batch = 256
    for lo in range(0, len(ids), batch):
        chunk = ids[lo:lo + batch]
        for pid, vec in zip(chunk, store.fp.many([test_prompts[p] for p in chunk]), strict=True):
            for w, d in zip(weights, store.decide(vec, weights), strict=True):
                assert d is not None  # the store has outcomes, so the prior always has a model
                yield {"prompt_id": pid, "cost_weight": w, "model": d.model, "source": d.source,
                       "confidence": round(d.confidence, 4)}
        if len(ids) > batch:
            say(f"route-eval: {min(lo + batch, len(ids))}/{len(ids)} test prompts ({time.monotonic() - start:.1f} s)")
