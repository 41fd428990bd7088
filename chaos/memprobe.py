"""``orchestrator serve`` with a memory probe: what grows in the daemon, seen from inside.

    CHAOS_MEMPROBE=DIR python -m chaos.soak --sessions 1000 --seconds 270 --turns-per-session 20

With ``CHAOS_MEMPROBE`` set, ``chaos._harness.DaemonProcess`` starts the daemon through this module.
Every ``CHAOS_MEMPROBE_EVERY`` seconds (30) a thread writes ``DIR/probe.jsonl``: VmRSS, gc object
counts by type (the 40 largest), and — with ``CHAOS_MEMPROBE_TRACEMALLOC=S`` (slow: 2–3×) — the
allocation sites that grew most since the previous sample, tracing from S seconds after the start
(after the warm-up: what is allocated then and still held later is what grows). Debug only.
"""
from __future__ import annotations

import gc
import json
import os
import runpy
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _probe(out: Path, every: float, trace_from: float | None) -> None:
    start = time.monotonic()
    previous: tracemalloc.Snapshot | None = None
    while True:
        time.sleep(every)
        if trace_from is not None and not tracemalloc.is_tracing() and time.monotonic() - start >= trace_from:
            tracemalloc.start(8)
        traced = tracemalloc.is_tracing()
        counts = Counter(type(o).__qualname__ for o in gc.get_objects())
        record: dict[str, object] = {"t": round(time.monotonic() - start, 1), "rss_kib": _rss_kib(),
                                     "gc_objects": sum(counts.values()), "types": dict(counts.most_common(40))}
        if traced:
            snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            record["traced_kib"] = sum(s.size for s in snap.statistics("filename")) // 1024
            if previous is not None:
                record["grew"] = [f"{s.size_diff // 1024:+} KiB {s.count_diff:+} blocks {s.traceback}"
                                  for s in snap.compare_to(previous, "lineno")[:25]]
            previous = snap
        with open(out / "probe.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")


def main() -> None:
    out = Path(os.environ["CHAOS_MEMPROBE"])
    out.mkdir(parents=True, exist_ok=True)
    trace_from = os.environ.get("CHAOS_MEMPROBE_TRACEMALLOC")
    every = float(os.environ.get("CHAOS_MEMPROBE_EVERY", "30"))
    threading.Thread(target=_probe, args=(out, every, None if trace_from is None else float(trace_from)),
                     daemon=True, name="memprobe").start()
    sys.argv = ["orchestrator", *sys.argv[1:]]
    runpy.run_module("orchestrator", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
