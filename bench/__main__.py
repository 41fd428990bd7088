"""``python -m bench``: run every benchmark, print one table each, optionally write JSON.

    python -m bench                    # full run (a few minutes on a 2-core machine)
    python -m bench --quick            # smoke run, under a minute
    python -m bench --json out.json    # also write every number (and the machine) as JSON
    python -m bench --only codec,routing

Exit status is 0 even when a target is missed: a benchmark reports, it does not gate (timing
asserts do not belong in tests on shared machines). ``--strict`` exits 1 on a missed target.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import time
import traceback

from bench._common import machine_info, print_section

# name → module; each module has ``sections(quick) -> list[section dict]`` (see bench/_common.py).
BENCHMARKS = {
    "transport": "bench.transport_bench",      # 1. transport hop
    "routing": "bench.routing_bench",          # 2. routing decision
    "turn": "bench.turn_bench",                # 3. turn overhead + 4. streaming relay
    "concurrency": "bench.concurrency_bench",  # 5. concurrency and memory
    "codec": "bench.codec_bench",              # 6. codec
    "memory": "bench.memory_bench",            # 7. memory over 20,000 sessions
    "reuse": "bench.reuse_bench",              # 8. session reuse: turn 300 vs turn 10
    "peer": "bench.peer_bench",                # 9. LiteLLM proxy side by side (only if installed)
    "gateway": "bench.gateway_bench",          # 10. HTTP gateway overhead
    "hops": "bench.hops_bench",                # 11. events per Ping / turn (task switches, hops, SQL)
    "floor": "bench.floor_bench",              # 12. a turn's work in one trio task, no actors
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations; under a minute")
    parser.add_argument("--json", metavar="PATH", help="write all results as JSON to PATH")
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target is missed")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    machine = machine_info()
    started = datetime.datetime.now(datetime.UTC)
    print(f"# bench {'--quick ' if args.quick else ''}{started:%Y-%m-%d %H:%M UTC}")
    print(f"machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram_gib']} GiB RAM; "
          f"Python {machine['python']}, trio {machine['trio']}, pyzmq {machine['pyzmq']} "
          f"(libzmq {machine['libzmq']}), msgpack {machine['msgpack']}; load {machine['loadavg_at_start']}")
    result: dict = {"date": started.isoformat(timespec="seconds"), "quick": args.quick, "machine": machine,
                    "benchmarks": {}}
    t_all = time.perf_counter()
    failed = False
    for name in names:
        t0 = time.perf_counter()
        try:
            sections = importlib.import_module(BENCHMARKS[name]).sections(args.quick)
        except Exception:  # one broken benchmark must not hide the others' numbers
            failed = True
            print(f"\n## {name}: FAILED\n{traceback.format_exc()}", file=sys.stderr)
            result["benchmarks"][name] = {"error": traceback.format_exc()}
            continue
        seconds = time.perf_counter() - t0
        for section in sections:
            print_section(section)
        print(f"  ({name}: {seconds:.1f} s)")
        result["benchmarks"][name] = {"seconds": round(seconds, 2), "sections": sections}
    total = time.perf_counter() - t_all
    targets = [t for b in result["benchmarks"].values() for s in b.get("sections", ()) for t in s["targets"]]
    missed = [t for t in targets if not t["met"]]
    result["seconds"] = round(total, 2)
    result["targets_met"] = len(targets) - len(missed)
    result["targets_missed"] = len(missed)
    print(f"\n# targets: {len(targets) - len(missed)} met, {len(missed)} missed; total {total:.1f} s")
    for t in missed:
        print(f"  MISSED {t['name']}: {t['value']} (target {t['target']})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, default=str)
        print(f"wrote {args.json}")
    if failed:
        return 2
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
