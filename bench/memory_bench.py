"""Memory over time: the daemon's RSS must not grow with its past (issue 10 item 2).

    python bench/memory_bench.py [--quick]        # also: python -m bench --only memory

One daemon process (``python -m orchestrator serve``, the demo provider of ``orchestrator demo``
so no other process competes for the CPU) serves 20,000 one-turn sessions, ``ask``-style: open a
session, run one turn, never come back. Clients: 4 connections, 32 turns in flight. RSS
(``VmRSS`` from /proc/<pid>/status) is read after a warm-up of 2,000 sessions (the daemon's
caches — 256 idle sessions, 1,024 message counters, SQLite's page cache — are full by then) and
every 2,000 sessions after; the target is ≤ 10 % growth from warm-up to the end.
Baseline: the RSS after warm-up, same run.
"""
from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio  # noqa: E402

from bench._common import DaemonProcess, print_section, row, target  # noqa: E402
from bench.turn_bench import daemon_turn  # noqa: E402
from orchestrator.client import open_client  # noqa: E402

SESSIONS, WARMUP, SAMPLE_EVERY = 20_000, 2_000, 2_000
QUICK = (3_000, 1_000, 500)
CLIENTS, IN_FLIGHT = 4, 32
GROWTH_LIMIT = 0.10


def demo_config() -> tuple[str, str]:
    files = resources.files("orchestrator").joinpath("demo_config")
    return files.joinpath("models.yaml").read_text(), files.joinpath("routing.yaml").read_text()


async def _drive(daemon: DaemonProcess, total: int, warmup: int, every: int) -> dict:
    samples: list[tuple[int, int]] = []     # (sessions done, RSS KiB)
    done = 0
    errors = 0
    turn_us: list[float] = []
    todo = iter(range(total))
    async with open_client(daemon.endpoint) as c0, open_client(daemon.endpoint) as c1, \
            open_client(daemon.endpoint) as c2, open_client(daemon.endpoint) as c3:
        clients = (c0, c1, c2, c3)[:CLIENTS]
        samples.append((0, daemon.rss_kib()))

        async def worker(k: int) -> None:
            nonlocal done, errors
            client = clients[k % len(clients)]
            for i in todo:
                try:
                    sid = (await client.open_session()).session_id
                    _, total_us, _ = await daemon_turn(client, sid, f"one-off question number {i}")
                    turn_us.append(total_us)
                except Exception:
                    errors += 1
                done += 1
                if done == warmup or (done > warmup and (done - warmup) % every == 0) or done == total:
                    samples.append((done, daemon.rss_kib()))

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(IN_FLIGHT):
                nursery.start_soon(worker, k)
        wall = time.perf_counter() - t0
        status = await c0.status()
    return {"samples": samples, "errors": errors, "wall_s": wall, "turns": len(turn_us),
            "sessions_in_memory": status.sessions_open, "vmhwm_kib": daemon.rss_kib("VmHWM")}


def run(quick: bool = False) -> dict:
    total, warmup, every = QUICK if quick else (SESSIONS, WARMUP, SAMPLE_EVERY)
    models, routing = demo_config()
    daemon = DaemonProcess(models, routing, log_level="warning")
    try:
        result = trio.run(_drive, daemon, total, warmup, every)
    finally:
        daemon.close()
    at = dict(result["samples"])
    warm_kib = at[warmup]
    end_kib = result["samples"][-1][1]
    result.update(total=total, warmup=warmup, warm_kib=warm_kib, end_kib=end_kib,
                  growth=(end_kib - warm_kib) / warm_kib)
    return result


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)
    curve = ", ".join(f"{n:,}: {kib / 1024:.1f}" for n, kib in r["samples"])
    notes = [f"RSS MiB by sessions served — {curve}",
             f"{r['turns']:,} turns completed, {r['errors']} errors, {r['wall_s']:.0f} s wall; sessions still in "
             f"memory at the end: {r['sessions_in_memory']}; peak (VmHWM) {r['vmhwm_kib'] / 1024:.1f} MiB"]
    rows = [row(f"RSS after {r['warmup']:,} sessions (warm-up)", None, baseline="(baseline)", ratio=1.0),
            row(f"RSS after {r['total']:,} sessions", None, baseline="warm-up", ratio=r["end_kib"] / r["warm_kib"])]
    rows[0]["throughput"], rows[0]["throughput_unit"] = r["warm_kib"] / 1024, "MiB"
    rows[1]["throughput"], rows[1]["throughput_unit"] = r["end_kib"] / 1024, "MiB"
    targets = [target(f"memory: RSS growth from warm-up to {r['total']:,} one-turn sessions", "≤ 10 %",
                      f"{r['growth'] * 100:+.1f} % ({r['warm_kib'] / 1024:.1f} → {r['end_kib'] / 1024:.1f} MiB)",
                      r["growth"] <= GROWTH_LIMIT and r["errors"] == 0)]
    return [{"title": f"7. Memory over {r['total']:,} one-turn sessions (demo provider, one daemon)",
             "notes": notes, "rows": rows, "targets": targets, "raw": r}]


if __name__ == "__main__":
    for section in sections("--quick" in sys.argv):
        print_section(section)
