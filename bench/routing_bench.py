"""Routing decision latency (chain + validation, no pattern store) at 10/100/1000 rules.

Worst case: only the LAST rule matches, so every predicate of every rule is evaluated. Rules mix
the predicate kinds a real file uses (regex, substring, token threshold, image flag, extension,
budget). The baseline, measured in the same run, is one compiled regex search on the same message
— the unit of work a rule costs at best — so the ratio reads "a decision costs N regex searches".

    python bench/routing_bench.py [--quick]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.config_files import load_policy_text, load_registry_text  # noqa: E402
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
    return {"median_us": statistics.median(ordered), "p99_us": ordered[int(len(ordered) * 0.99) - 1]}


def run(quick: bool = False) -> dict:
    iterations = 2_000 if quick else 20_000
    def make_ctx() -> TurnContext:
        return TurnContext(session_id="s", turn_id="t", message_text=MESSAGE, estimated_input_tokens=1200,
                           has_tool_definitions=True, has_system_prompt=True, cost_today_usd=Decimal("1.25"),
                           file_extensions=frozenset({".py"}))

    ctx = make_ctx()
    import re

    rx = re.compile("run the tests")
    baseline = _stats(_timings(lambda: rx.search(MESSAGE), iterations))
    results = {"baseline_regex_search": baseline, "decisions": {}, "iterations": iterations}
    for n in (10, 100, 1000):
        engine = build_engine(n)
        decision = engine.decide(ctx)
        assert decision.chosen_model == "anthropic:claude-haiku-4-5", decision
        assert decision.chain[-1].rule_name == "last"
        count = iterations if n < 1000 else max(iterations // 4, 500)
        for _ in range(200):                 # warm-up: view cache, branch predictors, allocator
            engine.decide(make_ctx())
        samples = _decision_timings(engine, [make_ctx() for _ in range(count)])
        row = _stats(samples)
        row["ratio_to_baseline"] = row["median_us"] / baseline["median_us"]
        results["decisions"][n] = row
    results["machine"] = f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    res = run(args.quick)
    base = res["baseline_regex_search"]
    print(f"machine: {res['machine']}")
    print(f"baseline (one compiled regex search): median {base['median_us']:.2f} µs, p99 {base['p99_us']:.2f} µs")
    print(f"{'rules':>6} {'median µs':>10} {'p99 µs':>10} {'× baseline':>11}")
    for n, row in res["decisions"].items():
        print(f"{n:>6} {row['median_us']:>10.1f} {row['p99_us']:>10.1f} {row['ratio_to_baseline']:>11.1f}")


if __name__ == "__main__":
    main()
