"""Session reuse: one session used like ``chat`` for 300 turns; turn 300 must cost what turn 10 does.

    python bench/reuse_bench.py [--quick]

Setup as in turn_bench (fake provider, daemon, this client: three processes). One session runs
300 short turns (7-chunk answers), so its history grows to 600 messages. After every daemon turn
the fake has written the request body the daemon just sent; this process sends that exact body
straight to the fake (the baseline: a provider request with the same history costs more for
everyone). Overhead of turn k = daemon total − direct total for the same body. Daemon CPU per turn
is read per thread from /proc/<pid>/task/*/schedstat (nanoseconds; clock ticks are too coarse for
one turn). The figures compared are medians over a window of turns: 1–20 ("turn 10") and the last
20 ("turn 300").
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import trio  # noqa: E402

from bench._common import (  # noqa: E402
    DaemonProcess, FakeProvider, closing_all, cpu_delta_ns, models_yaml, routing_yaml, row, short_tmpdir, target,
)
from bench.turn_bench import daemon_turn, direct_stream  # noqa: E402
from orchestrator.client import open_client  # noqa: E402

MODEL = "c7"
TURNS = 300
WINDOW = 20
LIMIT = 1.1


async def _measure(fake: FakeProvider, daemon: DaemonProcess, turns: int) -> dict:
    url = fake.base_url + "/chat/completions"
    out: dict[str, list[float]] = {"daemon_total": [], "direct_total": [], "overhead": [], "cpu_us": []}
    async with open_client(daemon.endpoint) as client, httpx.AsyncClient(timeout=60) as http:
        warm = (await client.open_session()).session_id
        for _ in range(3):
            await daemon_turn(client, warm, "warm up")
        sid = (await client.open_session()).session_id
        for k in range(turns):
            before = daemon.thread_cpu_ns()
            _, total, chunks = await daemon_turn(client, sid, f"question {k}: what did I ask before?")
            cpu = cpu_delta_ns(before, daemon.thread_cpu_ns())
            assert chunks == 7, chunks
            body = fake.request_body(MODEL)
            direct = min([(await direct_stream(http, url, body))[1] for _ in range(2)])
            out["daemon_total"].append(total)
            out["direct_total"].append(direct)
            out["overhead"].append(total - direct)
            out["cpu_us"].append(cpu / 1000)
    return out


def run(quick: bool = False) -> dict:
    dump = short_tmpdir("obench-dump-")
    fake = FakeProvider(dump)
    daemon = None
    try:
        daemon = DaemonProcess(models_yaml(fake.base_url, [7]), routing_yaml(f"fake:{MODEL}", {}))
    finally:
        if daemon is None:
            fake.close()
    with closing_all(fake, daemon):
        return trio.run(_measure, fake, daemon, TURNS)


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)

    def window(key: str, last: bool) -> float:
        values = r[key][-WINDOW:] if last else r[key][:WINDOW]
        return statistics.median(values)

    early = {k: window(k, False) for k in r}
    late = {k: window(k, True) for k in r}
    over_ratio = late["overhead"] / early["overhead"] if early["overhead"] > 0 else float("inf")
    cpu_ratio = late["cpu_us"] / early["cpu_us"]
    n = len(r["daemon_total"])
    return [{
        "title": f"8. Session reuse ({n} turns in one session; medians of turns 1–{WINDOW} vs the last {WINDOW})",
        "notes": ["overhead = daemon total − direct total of the same request body (history of ≈ 2×k messages); "
                  "daemon CPU per turn from /proc/<pid>/task/*/schedstat"],
        "rows": [
            row("turn 10: direct total", early["direct_total"], None, baseline="(baseline)", ratio=1.0),
            row("turn 10: daemon total", early["daemon_total"], None, baseline="turn 10 direct",
                base_median_us=early["direct_total"]),
            row(f"turn {n}: direct total", late["direct_total"], None, baseline="(baseline)", ratio=1.0),
            row(f"turn {n}: daemon total", late["daemon_total"], None, baseline=f"turn {n} direct",
                base_median_us=late["direct_total"]),
            row("turn 10: daemon overhead", early["overhead"], None, baseline="(baseline)", ratio=1.0),
            row(f"turn {n}: daemon overhead", late["overhead"], None, baseline="turn 10 overhead",
                ratio=over_ratio),
            row("turn 10: daemon CPU", early["cpu_us"], None, baseline="(baseline)", ratio=1.0),
            row(f"turn {n}: daemon CPU", late["cpu_us"], None, baseline="turn 10 CPU", ratio=cpu_ratio),
        ],
        "targets": [
            target(f"reuse: overhead, turn {n} / turn 10", f"≤ {LIMIT}×", f"{over_ratio:.2f}×", over_ratio <= LIMIT),
            target(f"reuse: daemon CPU, turn {n} / turn 10", f"≤ {LIMIT}×", f"{cpu_ratio:.2f}×", cpu_ratio <= LIMIT),
        ],
        "raw": {"early": early, "late": late},
    }]


if __name__ == "__main__":
    from bench._common import print_section

    for section in sections("--quick" in sys.argv[1:]):
        print_section(section)
