"""Routing decision latency (chain + validation, no pattern store) at 10/100/1000 rules.

Worst case: only the LAST rule matches, so every predicate of every rule is evaluated. Rules mix
the predicate kinds a real file uses (regex, substring, token threshold, image flag, extension,
budget). The baseline, measured in the same run, is one compiled regex search on the same message
— the unit of work a rule costs at best — so the ratio reads "a decision costs N regex searches".

    python bench/routing_bench.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.config.files import load_policy_text, load_registry_text  # noqa: E402
from actors.router.chain import RoutingEngine  # noqa: E402
from actors.router.context import TurnContext  # noqa: E402

MODELS = """
providers:
  anthropic: {kind: anthropic}
models:
  anthropic:claude-haiku-4-5:
    tier: fast
    aliases: [haiku]
    capabilities: {max_context_tokens: 200000, supports_images: true}
  anthropic:claude-sonnet-4-6:
    tier: balanced
    aliases: [sonnet]
    capabilities: {max_context_tokens: 200000, supports_images: true}
  anthropic:claude-opus-4-7:
    tier: deep
    aliases: [opus]
    capabilities: {max_context_tokens: 200000, supports_images: true}
"""
MESSAGE = "Please refactor the session manager so that turn locking is explicit, then run the tests."
_MODELS = ("haiku", "sonnet", "opus")


def _rule(i: int) -> str:
    kind = i % 6
    when = {
        0: f'{{message_matches: "^/cmd{i}\\\\b|zz{i}q"}}',
        1: f'{{message_contains_any: ["kw{i}x", "other{i}y"]}}',
        2: f"{{estimated_input_tokens_gt: {10**9 + i}}}",
        3: f'{{has_images: true, message_matches: "img{i}"}}',
        4: f'{{file_extensions_in_context: [".ext{i}"]}}',
        5: f"{{cost_today_exceeds_usd: {1000 + i}}}",
    }[kind]
    return f'  - {{name: "r{i}", when: {when}, use: {_MODELS[i % 3]}}}\n'


def build_engine(n_rules: int) -> RoutingEngine:
    registry, errors = load_registry_text(MODELS, "models.yaml")
    assert registry is not None, errors
    text = "schema_version: 1\nglobal_default: sonnet\nrules:\n"
    text += "".join(_rule(i) for i in range(n_rules - 1))
    text += '  - {name: "last", when: {message_matches: "run the tests"}, use: haiku}\n'
    policy, errors, _ = load_policy_text(text, "routing.yaml", registry)
    assert policy is not None, errors
    return RoutingEngine(policy, registry, {"ANTHROPIC_API_KEY": "bench"})


ROUNDS = 5


def _timings(fn, iterations: int) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(iterations):
        t0 = clock()
        fn()
        out.append((clock() - t0) / 1000.0)
    return out


def _decision_timings(engine: RoutingEngine, contexts: list[TurnContext]) -> list[float]:
    # A fresh TurnContext per decision, built outside the timed region, as each real turn has one:
    # per-turn lazy work (the casefolded message) is paid inside the measurement, not cached.
    clock = time.perf_counter_ns
    decide = engine.decide
    out = []
    for c in contexts:
        t0 = clock()
        decide(c)
        out.append((clock() - t0) / 1000.0)
    return out


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_us": statistics.median(ordered), "p99_us": ordered[max(int(len(ordered) * 0.99) - 1, 0)]}


def _combine(rounds: list[dict[str, float]]) -> dict[str, float]:
    # Shared CI machines preempt: the best round's median is the code's cost, and the median of the
    # rounds' p99s keeps one unlucky round from defining the tail.
    return {"median_us": min(r["median_us"] for r in rounds),
            "p99_us": statistics.median(r["p99_us"] for r in rounds)}


def _make_ctx() -> TurnContext:
    return TurnContext(session_id="s", turn_id="t", message_text=MESSAGE, estimated_input_tokens=1200,
                       has_tool_definitions=True, has_system_prompt=True, cost_today_usd=Decimal("1.25"),
                       file_extensions=frozenset({".py"}))


def run(quick: bool = False) -> dict:
    """Rounds interleave baseline and decisions so machine load hits both alike."""
    per_round = 400 if quick else 4_000
    rx = re.compile("run the tests")
    engines = {}
    for n in (10, 100, 1000):
        engine = engines[n] = build_engine(n)
        decision = engine.decide(_make_ctx())
        assert decision.chosen_model == "anthropic:claude-haiku-4-5", decision
        assert decision.chain[-1].rule_name == "last"
        for _ in range(200):                 # warm-up: view cache, allocator
            engine.decide(_make_ctx())
    series: dict[object, list[dict[str, float]]] = {"regex": [], "call": [], **{n: [] for n in engines}}
    for _ in range(ROUNDS):
        series["regex"].append(_stats(_timings(lambda: rx.search(MESSAGE), per_round)))
        series["call"].append(_stats(_timings(lambda: None, per_round)))
        for n, engine in engines.items():
            count = per_round if n < 1000 else max(per_round // 4, 100)
            series[n].append(_stats(_decision_timings(engine, [_make_ctx() for _ in range(count)])))
    baseline = _combine(series["regex"])
    results = {
        "baseline_regex_search": baseline,
        "baseline_empty_call": _combine(series["call"]),
        "decisions": {},
        "rounds": ROUNDS,
        "iterations_per_round": per_round,
        "machine": f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
                   f"{os.cpu_count()} CPUs",
    }
    for n in engines:
        row = _combine(series[n])
        row["ratio_to_baseline"] = row["median_us"] / baseline["median_us"]
        results["decisions"][n] = row
    return results


def sections(quick: bool = False) -> list[dict]:
    res = run(quick)
    base = res["baseline_regex_search"]
    call = res["baseline_empty_call"]
    rows = [
        {"name": "baseline: one compiled regex search", "median_us": base["median_us"], "p99_us": base["p99_us"],
         "throughput": 1e6 / base["median_us"], "throughput_unit": "/s", "ratio": 1.0, "baseline": "(baseline)"},
        {"name": "timer + empty call", "median_us": call["median_us"], "p99_us": call["p99_us"],
         "throughput": None, "throughput_unit": "", "ratio": call["median_us"] / base["median_us"],
         "baseline": "regex search"},
    ]
    for n, r in res["decisions"].items():
        rows.append({"name": f"decision, {n} rules (last one matches)", "median_us": r["median_us"],
                     "p99_us": r["p99_us"], "throughput": 1e6 / r["median_us"], "throughput_unit": "decisions/s",
                     "ratio": r["ratio_to_baseline"], "baseline": "regex search"})
    at100 = res["decisions"][100]
    return [{
        "title": "2. Routing decision (chain + validation, no pattern store)",
        "notes": [f"{res['rounds']} interleaved rounds × {res['iterations_per_round']} decisions; median = best "
                  "round's median, p99 = median of the rounds' p99s; fresh TurnContext per decision"],
        "rows": rows,
        "targets": [
            {"name": "routing: 100 rules, p50", "target": "≤ 50 µs", "value": f"{at100['median_us']:.1f} µs",
             "met": at100["median_us"] <= 50},
            {"name": "routing: 100 rules, p99", "target": "≤ 200 µs", "value": f"{at100['p99_us']:.1f} µs",
             "met": at100["p99_us"] <= 200},
        ],
        "raw": res,
    }]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    res = run(args.quick)
    base = res["baseline_regex_search"]
    print(f"machine: {res['machine']}")
    call = res["baseline_empty_call"]
    print(f"baseline (one compiled regex search): median {base['median_us']:.2f} µs, p99 {base['p99_us']:.2f} µs")
    print(f"(timer + empty call: median {call['median_us']:.2f} µs)")
    print(f"{'rules':>6} {'median µs':>10} {'p99 µs':>10} {'× baseline':>11}")
    for n, row in res["decisions"].items():
        print(f"{n:>6} {row['median_us']:>10.1f} {row['p99_us']:>10.1f} {row['ratio_to_baseline']:>11.1f}")


if __name__ == "__main__":
    main()
