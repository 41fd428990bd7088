"""Gateway hops: what one HTTP gateway request costs in *events*, next to a socket client's turn.

    python bench/gateway_hops_bench.py [--quick]

As ``hops_bench`` (the daemon runs under ``bench/_counted_serve.py`` with counters around trio's
scheduler, the actors' loop, the kernel, the codec, SQLite and ZeroMQ), with ``--http``: N
non-streaming and N 8-chunk gateway requests (``httpx``, one kept-alive connection), then N 8-chunk
socket turns (fresh session each) for comparison. Counts per operation do not depend on load.
``BENCH_DAEMON_TREE`` runs an older checkout's daemon under the same counters (before → after).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import trio  # noqa: E402

from bench._common import (  # noqa: E402
    DaemonProcess, FakeProvider, closing_all, cpu_delta_ns, models_yaml, routing_yaml, short_tmpdir,
)
from bench.gateway_bench import MESSAGES, GatewayDaemon, _free_port, plain_call, stream_call  # noqa: E402
from bench.hops_bench import COUNTED, HEADLINE, CountedDaemon, _per_op  # noqa: E402
from bench.turn_bench import daemon_turn  # noqa: E402
from orchestrator.client import open_client  # noqa: E402


class CountedGatewayDaemon(GatewayDaemon, CountedDaemon):
    def __init__(self, models: str, routing: str):
        self.counts_path = short_tmpdir("obench-gwhops-") / "counts.json"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        DaemonProcess.__init__(
            self, models, routing, log_level="warning", serve_args=("--http", f"127.0.0.1:{self.port}"),
            launcher=(str(COUNTED),), extra_env={"HOPS_COUNTS": str(self.counts_path)})


async def _measure(daemon: CountedGatewayDaemon, n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    url = daemon.url + "/v1/chat/completions"
    sse = {"accept": "text/event-stream"}
    plain = {"model": "fake:c8", "messages": MESSAGES, "stream": False}
    streamed = {**plain, "stream": True}
    async with httpx.AsyncClient(timeout=60) as http, open_client(daemon.endpoint) as client:
        for _ in range(5):
            await plain_call(http, url, plain)
            await stream_call(http, url, streamed, sse)
            await daemon_turn(client, (await client.open_session()).session_id, MESSAGES[0]["content"])
        await trio.sleep(0.2)

        async def batch(name: str, one) -> None:
            before, cpu = daemon.counts(), daemon.thread_cpu_ns()
            for _ in range(n):
                await one()
            await trio.sleep(0.2)  # background work the request started (ledger rows) counts too
            out[name] = _per_op(before, daemon.counts(), n)
            out[name]["daemon_cpu_us"] = cpu_delta_ns(cpu, daemon.thread_cpu_ns()) / n / 1000

        await batch("gateway, non-streaming", lambda: plain_call(http, url, plain))
        await batch("gateway, 8 chunks", lambda: stream_call(http, url, streamed, sse))
        sessions = [(await client.open_session()).session_id for _ in range(n)]
        it = iter(sessions)
        await batch("socket turn, 8 chunks", lambda: daemon_turn(client, next(it), MESSAGES[0]["content"]))
    return out


def run(quick: bool = False) -> dict[str, dict[str, float]]:
    fake = FakeProvider(short_tmpdir("obench-gwhops-dump-"))
    with closing_all(fake):
        daemon = CountedGatewayDaemon(models_yaml(fake.base_url, [8]), routing_yaml("fake:c8", {}))
        with closing_all(daemon):
            return trio.run(_measure, daemon, 50 if quick else 200)


def main() -> None:
    r = run("--quick" in sys.argv[1:])
    ops = list(r)
    w = max(len(k) for k in HEADLINE) + 2
    print(f"{'per operation':<{w}}" + "".join(f"{op:>24}" for op in ops))
    for key in HEADLINE:
        print(f"{key:<{w}}" + "".join(f"{r[op].get(key, 0):>24.1f}" for op in ops))
    for op, d in r.items():
        print(op + ": " + json.dumps({k: round(v, 2) for k, v in sorted(d.items(), key=lambda kv: -kv[1])
                                      if k not in HEADLINE and v >= 0.5}))


if __name__ == "__main__":
    main()
