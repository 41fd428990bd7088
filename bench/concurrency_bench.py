"""Concurrency and memory: many sessions streaming at once, and the cost of an idle session.

    python bench/concurrency_bench.py [--quick]

Setup as in turn_bench (fake provider, daemon and this client in three processes), with a FRESH
daemon (``python -m orchestrator serve``) per measurement so its RSS (``VmRSS`` in
/proc/<pid>/status, sampled every 20 ms, and ``VmHWM``, the kernel's own peak) belongs to that
measurement alone.

* N concurrent sessions (N = 100 and 1,000), each running one turn whose answer streams 200
  chunks from the fake provider. Sessions are opened first (untimed); then all N turns start at
  once and the wall time until the last ``turn.completed`` is measured. Clients: one
  ``open_client`` connection per 10 sessions (a real deployment has one per CLI process).
  Baseline, same run: the same N streams fetched directly with one ``httpx.AsyncClient`` (the
  adapter's own client type, same default pool of 100 connections) from this process.
  Errors: any exception, or a terminal event other than ``turn.completed``, or a chunk count
  other than 200.
* Both levels run while ``BackgroundLoad`` (one busy-looping process per core, bounded to a few
  minutes, killed at the end of the level) keeps every core busy: the daemon must not lose a turn
  when it gets only part of a CPU (a fixed internal timeout once lost 287 of 1,000 turns that way).
  The direct baseline runs under the same load.
* Idle sessions: 10,000 ``OpenSession`` requests (no turn) against a fresh daemon; RSS per
  session = (RSS after − RSS before) / 10,000. Baseline: the daemon's own RSS before.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import trio  # noqa: E402

from bench._common import (  # noqa: E402
    BackgroundLoad, DaemonProcess, FakeProvider, models_yaml, p99, row, routing_yaml, short_tmpdir, target,
)
from bench.turn_bench import daemon_turn, direct_stream  # noqa: E402
from orchestrator.client import open_client  # noqa: E402

CHUNKS = 200
MODEL = f"fake:c{CHUNKS}"
TEXT = "Describe the actor kernel."
SESSIONS_PER_CLIENT = 10
RSS_LIMIT_MIB = 300


class RssSampler:
    def __init__(self, daemon: DaemonProcess):
        self.daemon = daemon
        self.peak_kib = 0

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self.peak_kib = max(self.peak_kib, self.daemon.rss_kib())
            await trio.sleep(0.02)


async def _direct(base_url: str, body: dict, n: int) -> dict:
    url = base_url + "/chat/completions"
    errors = 0
    totals: list[float] = []
    async with httpx.AsyncClient(timeout=600) as http:
        await direct_stream(http, url, body)  # warm the pool's first connection

        async def one() -> None:
            nonlocal errors
            try:
                _, total, chunks = await direct_stream(http, url, body)
                totals.append(total)
                errors += chunks != CHUNKS
            except Exception:
                errors += 1

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "errors": errors, "completed": len(totals), "turn_totals_us": totals}


async def _through_daemon(daemon: DaemonProcess, n: int) -> dict:
    sampler = RssSampler(daemon)
    errors: list[str] = []
    totals: list[float] = []
    n_clients = max(1, -(-n // SESSIONS_PER_CLIENT))
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(open_client(daemon.endpoint, timeout=10))
                   for _ in range(n_clients)]
        # warm-up: one turn, so imports, adapter and pool exist before the RSS baseline
        await daemon_turn(clients[0], (await clients[0].open_session()).session_id, TEXT)
        rss_before = daemon.rss_kib()
        sessions = []
        for i in range(n):
            client = clients[i % n_clients]
            sessions.append((client, (await client.open_session()).session_id))
        rss_sessions_open = daemon.rss_kib()

        async def one(client, session_id: str) -> None:
            try:
                _, total, chunks = await daemon_turn(client, session_id, TEXT)
                if chunks != CHUNKS:
                    errors.append(f"{chunks} chunks")
                else:
                    totals.append(total)
            except Exception as exc:  # counted, never fatal: this is what we measure
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

        async with trio.open_nursery() as outer:
            await outer.start(sampler.run)
            t0 = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for client, session_id in sessions:
                    nursery.start_soon(one, client, session_id)
            wall = time.perf_counter() - t0
            sampler.peak_kib = max(sampler.peak_kib, daemon.rss_kib())
            outer.cancel_scope.cancel()
    return {"wall_s": wall, "errors": len(errors), "error_samples": sorted(set(errors))[:5],
            "completed": len(totals), "turn_totals_us": totals, "rss_before_kib": rss_before,
            "rss_sessions_open_kib": rss_sessions_open, "rss_peak_kib": sampler.peak_kib,
            "vmhwm_kib": daemon.rss_kib("VmHWM"), "clients": n_clients}


async def _idle_sessions(daemon: DaemonProcess, n: int) -> dict:
    async with open_client(daemon.endpoint, timeout=10) as client:
        for _ in range(50):  # warm-up: first-use allocations are not per-session cost
            await client.open_session()
        before = daemon.rss_kib()
        t0 = time.perf_counter()
        per_task = n // 20

        async def opener() -> None:
            for _ in range(per_task):
                await client.open_session()

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(opener)
        wall = time.perf_counter() - t0
        after = daemon.rss_kib()
        status = await client.status()
    return {"sessions": per_task * 20, "rss_before_kib": before, "rss_after_kib": after,
            "per_session_bytes": (after - before) * 1024 / (per_task * 20), "open_wall_s": wall,
            "open_per_s": per_task * 20 / wall, "daemon_sessions": status.sessions_open}


def _fresh_daemon(fake: FakeProvider) -> DaemonProcess:
    return DaemonProcess(models_yaml(fake.base_url, [CHUNKS]), routing_yaml(MODEL, {}))


def run(quick: bool = False) -> dict:
    # --quick keeps under its minute with 300 instead of 1,000 streaming sessions; the 1,000-session
    # targets are only judged by the full run.
    levels = (100, 300) if quick else (100, 1000)
    idle_n = 2_000 if quick else 10_000
    out: dict = {"levels": {}, "chunks": CHUNKS}
    fake = FakeProvider(short_tmpdir("obench-dump-"))
    try:
        for n in levels:
            daemon = _fresh_daemon(fake)
            load = BackgroundLoad(max_s=300)
            try:
                load_before = os.getloadavg()[0]
                through = trio.run(_through_daemon, daemon, n)
                direct = trio.run(_direct, fake.base_url, fake.request_body(f"c{CHUNKS}"), n)
                through["loadavg_1m_after"] = os.getloadavg()[0]
                through["loadavg_1m_before"] = load_before
            finally:
                load.close()
                daemon.close()
            out["levels"][n] = {"daemon": through, "direct": direct}
        daemon = _fresh_daemon(fake)
        try:
            out["idle"] = trio.run(_idle_sessions, daemon, idle_n)
        finally:
            daemon.close()
    finally:
        fake.close()
    return out


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)
    rows, targets, notes = [], [], []
    for n, lv in r["levels"].items():
        d, b = lv["daemon"], lv["direct"]
        base_turn = statistics.median(b["turn_totals_us"]) if b["turn_totals_us"] else None
        rows.append(row(f"{n} direct httpx streams (wall)", b["wall_s"] * 1e6, None,
                        throughput=n * CHUNKS / b["wall_s"], throughput_unit="chunks/s",
                        baseline="(baseline)", ratio=1.0))
        rows.append(row(f"{n} daemon turns (wall)", d["wall_s"] * 1e6, None,
                        throughput=n * CHUNKS / d["wall_s"], throughput_unit="chunks/s",
                        baseline=f"{n} direct (wall)", ratio=d["wall_s"] / b["wall_s"]))
        if d["turn_totals_us"] and base_turn:
            med = statistics.median(d["turn_totals_us"])
            rows.append(row(f"{n} daemon turns: per-turn total", med, p99(d["turn_totals_us"]),
                            baseline=f"{n} direct per-stream", base_median_us=base_turn))
        peak_mib = max(d["rss_peak_kib"], d["vmhwm_kib"]) / 1024
        notes.append(f"{n} sessions: errors {d['errors']} (direct {b['errors']}), completed "
                     f"{d['completed']}/{n}, daemon RSS {d['rss_before_kib'] / 1024:.0f} MiB before → "
                     f"{d['rss_sessions_open_kib'] / 1024:.0f} MiB with sessions open → peak {peak_mib:.0f} MiB "
                     f"(×{peak_mib * 1024 / d['rss_before_kib']:.2f}); {d['clients']} client connections; "
                     f"under background load on every core (load average 1 min "
                     f"{d['loadavg_1m_before']:.2f} → {d['loadavg_1m_after']:.2f})")
        if d["error_samples"]:
            notes.append(f"{n} sessions: error samples: {d['error_samples']}")
        targets.append(target(f"concurrency: {n} sessions, zero errors and every turn completes", "0 errors",
                              f"{d['errors']} errors, {d['completed']}/{n} completed",
                              d["errors"] == 0 and d["completed"] == n))
        if n == max(r["levels"]):
            targets.append(target(f"concurrency: daemon RSS at {n:,} streaming sessions", f"≤ {RSS_LIMIT_MIB} MB",
                                  f"{peak_mib:.0f} MiB peak", peak_mib <= RSS_LIMIT_MIB))
    idle = r["idle"]
    rows.append(row(f"open {idle['sessions']:,} idle sessions", idle["open_wall_s"] * 1e6 / idle["sessions"], None,
                    throughput=idle["open_per_s"], throughput_unit="sessions/s", baseline=None))
    notes.append(f"idle sessions: {idle['sessions']:,} OpenSession → RSS {idle['rss_before_kib'] / 1024:.0f} → "
                 f"{idle['rss_after_kib'] / 1024:.0f} MiB (×{idle['rss_after_kib'] / idle['rss_before_kib']:.2f}): "
                 f"{idle['per_session_bytes']:,.0f} bytes per idle session; "
                 f"daemon reports {idle['daemon_sessions']:,} sessions")
    return [{
        "title": f"5. Concurrency and memory ({CHUNKS}-chunk answers; fresh daemon per level; every core kept busy)",
        "notes": notes, "rows": rows, "targets": targets, "raw": _strip(r),
    }]


def _strip(r: dict) -> dict:
    """The raw result without the per-turn sample lists (summarised instead)."""
    out = {"chunks": r["chunks"], "idle": r["idle"], "levels": {}}
    for n, lv in r["levels"].items():
        out["levels"][n] = {}
        for side, v in lv.items():
            v = dict(v)
            samples = v.pop("turn_totals_us")
            if samples:
                v["turn_total_median_us"] = statistics.median(samples)
                v["turn_total_p99_us"] = p99(samples)
            out["levels"][n][side] = v
    return out


if __name__ == "__main__":
    from bench._common import print_section

    t0 = time.perf_counter()
    for section in sections("--quick" in sys.argv[1:]):
        print_section(section)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
