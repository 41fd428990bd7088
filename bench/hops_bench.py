"""Actor hops and control path: what one Ping and one turn cost in *events*, not time.

    python bench/hops_bench.py [--quick]

The daemon runs as ``bench/_counted_serve.py serve`` (the real daemon with counters wrapped around
trio's scheduler, the actors' message loop, the kernel, the codec, cattrs, SQLite and the ZeroMQ
transport) next to the fake provider, as in turn_bench. The client pings it N times, then runs N
non-streaming and N 8-chunk turns (each on a fresh session opened beforehand), reading the
counters between the batches: the table is counts per operation. Counts do not depend on machine
load, so they show what a change removed even when timings on a shared machine cannot.
``BENCH_DAEMON_TREE`` runs an older checkout's daemon under the same counters (before → after).
"""
from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio  # noqa: E402

from bench._common import (  # noqa: E402
    DaemonProcess, FakeProvider, closing_all, cpu_delta_ns, models_yaml, routing_yaml, short_tmpdir,
)
from bench.turn_bench import daemon_turn  # noqa: E402
from orchestrator.client import open_client  # noqa: E402

COUNTED = Path(__file__).resolve().parent / "_counted_serve.py"
HEADLINE = ("trio.task_steps", "trio.tasks_spawned", "actor.messages", "kernel.deliver", "codec.encode",
            "codec.decode", "cattrs.unstructure", "cattrs.structure", "sqlite.statements", "zmq.sent",
            "zmq.received", "daemon_cpu_us")


class CountedDaemon(DaemonProcess):
    def __init__(self, models: str, routing: str):
        self.counts_path = short_tmpdir("obench-hops-") / "counts.json"
        super().__init__(models, routing, launcher=(str(COUNTED),), extra_env={"HOPS_COUNTS": str(self.counts_path)})

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.counts_path.parent, ignore_errors=True)

    def counts(self) -> dict[str, int]:
        before = self.counts_path.stat().st_mtime_ns if self.counts_path.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.counts_path.exists() and self.counts_path.stat().st_mtime_ns != before:
                return json.loads(self.counts_path.read_text())
            time.sleep(0.01)
        raise RuntimeError("the counted daemon did not write its counters")


def _per_op(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    return {k: (after.get(k, 0) - before.get(k, 0)) / n for k in after if after.get(k, 0) != before.get(k, 0)}


async def _measure(daemon: CountedDaemon, n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    async with open_client(daemon.endpoint) as client:
        for text in ("[nonstream] warm up", "warm up"):
            for _ in range(3):
                await daemon_turn(client, (await client.open_session()).session_id, text)
        for _ in range(20):
            await client.ping()
        await trio.sleep(0.2)  # let the warm-up's background work settle
        before, cpu = daemon.counts(), daemon.thread_cpu_ns()
        for _ in range(n):
            await client.ping()
        out["ping"] = _per_op(before, daemon.counts(), n)
        out["ping"]["daemon_cpu_us"] = cpu_delta_ns(cpu, daemon.thread_cpu_ns()) / n / 1000
        for name, text in (("turn, non-streaming", "[nonstream] Summarise the session manager."),
                           ("turn, 8 chunks", "Summarise the session manager in one sentence.")):
            sessions = [(await client.open_session()).session_id for _ in range(n)]
            await trio.sleep(0.2)
            before, cpu = daemon.counts(), daemon.thread_cpu_ns()
            for sid in sessions:
                await daemon_turn(client, sid, text)
            await trio.sleep(0.2)  # background work the turn started (ledger rows) counts too
            out[name] = _per_op(before, daemon.counts(), n)
            # The counters' own cost is in it (a few µs per event): compare like with like only.
            out[name]["daemon_cpu_us"] = cpu_delta_ns(cpu, daemon.thread_cpu_ns()) / n / 1000
    return out


def run(quick: bool = False) -> dict[str, dict[str, float]]:
    dump = short_tmpdir("obench-dump-")
    fake = FakeProvider(dump)
    with closing_all(fake):
        models = models_yaml(fake.base_url, [8, 9], non_streaming=(9,))
        daemon = CountedDaemon(models, routing_yaml("fake:c8", {"[nonstream]": "fake:c9"}))
        with closing_all(daemon):
            return trio.run(_measure, daemon, 50 if quick else 200)


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)
    ops = list(r)
    w = max(len(k) for k in HEADLINE) + 2
    lines = [f"{'per operation':<{w}}" + "".join(f"{op:>22}" for op in ops)]
    for key in HEADLINE:
        lines.append(f"{key:<{w}}" + "".join(f"{r[op].get(key, 0):>22.1f}" for op in ops))
    detail = {op: {k: round(v, 2) for k, v in sorted(r[op].items(), key=lambda kv: -kv[1])
                   if k not in HEADLINE and v >= 0.5} for op in ops}
    return [{"title": "11. Actor hops and control path (events per operation, counted in the daemon)",
             "notes": [*lines, *(f"{op}: {json.dumps(d)}" for op, d in detail.items())],
             "rows": [], "targets": [], "raw": r}]


def main() -> None:
    from bench._common import print_section

    for section in sections("--quick" in sys.argv[1:]):
        print_section(section)


if __name__ == "__main__":
    main()
