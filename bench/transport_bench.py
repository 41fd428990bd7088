"""Transport hop: raw pyzmq vs our trio transport vs a full daemon control round trip.

    python bench/transport_bench.py [--quick] [--tcp]

All socket measurements talk to the same out-of-process ROUTER echo peer
(tests/transport_peer.py, a zmq.proxy running in C); by default over ipc://,
the daemon's own default transport, so every row pays the same kernel path
(``--tcp`` for loopback TCP):

(a) raw pyzmq DEALER, send/recv in a loop: the baseline;
(f) one trio task driving a raw pyzmq DEALER itself (EVENTS + wait_readable,
    no owner task, fine only for a single task): what any trio integration
    pays just for sleeping in trio's event loop, so (b) - (f) is the cost of
    the owner-task design;
(b) one trio task over our transport, same loop;
(c) 100 trio tasks multiplexed over one transport DEALER, replies routed
    back to their task by a dispatcher: round trips per second;
(d) a full daemon control round trip: ``Client.ping()`` (``Ping`` to the
    control actor, ``Pong`` back) through ``orchestrator.client.open_client``
    against a real daemon (``python -m orchestrator serve``) in another
    process: client transport + codec + the daemon's ROUTER, node, kernel,
    actor mailbox and back;
(e) the same with ``ShowModel`` (the session actor, one SQLite read).

Rounds alternate between all rows so drift in machine load hits each alike.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import DaemonProcess, cpu_delta_ns, row, target  # noqa: E402
from orchestrator.client import open_client  # noqa: E402
from protocol.transport import ANY_TCP, ipc_endpoint, open_zmq_socket  # noqa: E402

PEER = ROOT / "tests" / "transport_peer.py"
PAYLOAD = b"x" * 64


def _start_peer(bind: str = ANY_TCP) -> tuple[subprocess.Popen[bytes], str]:
    peer = subprocess.Popen(
        [sys.executable, str(PEER), bind, "--bind"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert peer.stdout is not None
    line = peer.stdout.readline().decode().split()
    if line[:1] != ["ready"]:
        peer.kill()
        raise RuntimeError(f"peer failed to start: {line!r}")
    return peer, line[1]


def _stop_peer(peer: subprocess.Popen[bytes]) -> None:
    assert peer.stdin is not None
    peer.stdin.close()  # EOF on stdin is the peer's signal to exit
    try:
        peer.wait(timeout=5)
    except subprocess.TimeoutExpired:
        peer.kill()
        peer.wait()
    finally:
        if peer.stdout is not None:
            peer.stdout.close()


def _summary(samples_ns: list[int]) -> dict[str, float]:
    samples = sorted(samples_ns)
    return {
        "median_us": statistics.median(samples) / 1000,
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
        "n": len(samples),
    }


def bench_raw(ctx: zmq.Context, endpoint: str, n: int, warmup: int) -> list[int]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        samples = []
        clock = time.perf_counter_ns
        for i in range(warmup + n):
            t0 = clock()
            sock.send_multipart([b"0:%d" % i, PAYLOAD])
            sock.recv_multipart()
            if i >= warmup:
                samples.append(clock() - t0)
        return samples
    finally:
        sock.close(linger=0)


async def bench_trio_floor(ctx: zmq.Context, endpoint: str, n: int, warmup: int) -> list[int]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        samples = []
        clock = time.perf_counter_ns
        for i in range(warmup + n):
            t0 = clock()
            sock.send_multipart([b"0:%d" % i, PAYLOAD], zmq.NOBLOCK)
            while not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                await trio.lowlevel.wait_readable(sock.FD)
            sock.recv_multipart(zmq.NOBLOCK)
            await trio.lowlevel.checkpoint()
            if i >= warmup:
                samples.append(clock() - t0)
        return samples
    finally:
        sock.close(linger=0)


async def bench_single(ctx: zmq.Context, endpoint: str, n: int, warmup: int) -> list[int]:
    async with open_zmq_socket(ctx, zmq.DEALER, connect=endpoint) as zsock:
        samples = []
        clock = time.perf_counter_ns
        for i in range(warmup + n):
            t0 = clock()
            await zsock.send([b"0:%d" % i, PAYLOAD])
            await zsock.receive()
            if i >= warmup:
                samples.append(clock() - t0)
        return samples


async def bench_multiplexed(
    ctx: zmq.Context, endpoint: str, tasks: int, per_task: int
) -> dict[str, float]:
    async with open_zmq_socket(ctx, zmq.DEALER, connect=endpoint) as zsock:
        inboxes = [trio.open_memory_channel[bytes](1) for _ in range(tasks)]

        async def dispatch() -> None:
            async for request_id, _ in zsock:
                inboxes[int(request_id.partition(b":")[0])][0].send_nowait(request_id)

        async def client(task_id: int) -> None:
            inbox = inboxes[task_id][1]
            for seq in range(per_task):
                request_id = b"%d:%d" % (task_id, seq)
                await zsock.send([request_id, PAYLOAD])
                assert await inbox.receive() == request_id

        async with trio.open_nursery() as outer:
            outer.start_soon(dispatch)
            t0 = time.perf_counter()
            async with trio.open_nursery() as clients:
                for task_id in range(tasks):
                    clients.start_soon(client, task_id)
            elapsed = time.perf_counter() - t0
            outer.cancel_scope.cancel()
        total = tasks * per_task
        return {"round_trips": total, "seconds": elapsed, "per_second": total / elapsed}


DEMO_MODELS = """providers:
  demo: {kind: demo}
models:
  "demo:steady":
    tier: balanced
    capabilities: {max_context_tokens: 200000}
"""
DEMO_ROUTING = "schema_version: 1\nglobal_default: demo:steady\n"


async def bench_daemon(endpoint: str, n: int, warmup: int, what: str) -> list[int]:
    async with open_client(endpoint) as client:
        if what == "ping":
            call = client.ping
        else:
            session_id = (await client.open_session()).session_id

            async def call():
                await client.show_model(session_id)
        samples = []
        clock = time.perf_counter_ns
        for i in range(warmup + n):
            t0 = clock()
            await call()
            if i >= warmup:
                samples.append(clock() - t0)
        return samples


def run(quick: bool, tcp: bool = False) -> dict:
    rounds, per_round, per_task = (3, 400, 200) if quick else (8, 2_000, 1_000)
    ctx = zmq.Context()
    tmp = tempfile.mkdtemp(prefix="obench-t-", dir="/tmp")
    peer, endpoint = _start_peer(ANY_TCP if tcp else ipc_endpoint(tmp))
    daemon = None
    try:
        daemon = DaemonProcess(DEMO_MODELS, DEMO_ROUTING)
        # Alternate all rows round by round so drift in machine load hits each alike.
        series: dict[str, list[int]] = {k: [] for k in ("raw", "floor", "single", "daemon_ping", "daemon_show")}
        multi_rounds = []
        ping_cpu_ns = 0   # the daemon's CPU over the Ping rows (connect, warm-up and close included)
        for _ in range(rounds):
            series["raw"] += bench_raw(ctx, endpoint, per_round, warmup=100)
            series["floor"] += trio.run(bench_trio_floor, ctx, endpoint, per_round, 100)
            series["single"] += trio.run(bench_single, ctx, endpoint, per_round, 100)
            cpu = daemon.thread_cpu_ns()
            series["daemon_ping"] += trio.run(bench_daemon, daemon.endpoint, per_round, 100, "ping")
            ping_cpu_ns += cpu_delta_ns(cpu, daemon.thread_cpu_ns())
            series["daemon_show"] += trio.run(bench_daemon, daemon.endpoint, per_round // 2, 50, "show")
            multi_rounds.append(trio.run(bench_multiplexed, ctx, endpoint, 100, per_task // rounds * 2))
        out = {k: _summary(v) for k, v in series.items()}
        for k in ("floor", "single", "daemon_ping", "daemon_show"):
            out[k]["ratio_to_raw"] = out[k]["median_us"] / out["raw"]["median_us"]
            out[k]["overhead_us"] = out[k]["median_us"] - out["raw"]["median_us"]
        best = max(multi_rounds, key=lambda m: m["per_second"])
        out["trio_multiplexed_100"] = {
            "per_second_median": statistics.median(m["per_second"] for m in multi_rounds),
            "per_second_best": best["per_second"], "rounds": multi_rounds,
        }
        out["endpoint_kind"] = "tcp" if tcp else "ipc"
        out["daemon_rss_kib"] = daemon.rss_kib()
        out["daemon_cpu_us_per_ping"] = ping_cpu_ns / 1000 / (rounds * (per_round + 100))
    finally:
        if daemon is not None:
            daemon.close()
        _stop_peer(peer)
        ctx.term()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def sections(quick: bool = False, tcp: bool = False) -> list[dict]:
    r = run(quick, tcp)
    raw = r["raw"]
    base = raw["median_us"]
    multi = r["trio_multiplexed_100"]
    rows = [
        row("(a) raw pyzmq DEALER, sync", base, raw["p99_us"], throughput=1e6 / base, throughput_unit="rt/s",
            baseline="(baseline)", ratio=1.0),
        row("(f) trio, 1 task on raw pyzmq", r["floor"]["median_us"], r["floor"]["p99_us"],
            throughput=1e6 / r["floor"]["median_us"], throughput_unit="rt/s", baseline="raw", base_median_us=base),
        row("(b) trio transport, 1 task", r["single"]["median_us"], r["single"]["p99_us"],
            throughput=1e6 / r["single"]["median_us"], throughput_unit="rt/s", baseline="raw", base_median_us=base),
        row("(c) trio transport, 100 tasks", None, None, throughput=multi["per_second_median"],
            throughput_unit="rt/s", baseline="raw (1 task)", ratio=multi["per_second_median"] / (1e6 / base)),
        row("(d) daemon Ping via client lib", r["daemon_ping"]["median_us"], r["daemon_ping"]["p99_us"],
            throughput=1e6 / r["daemon_ping"]["median_us"], throughput_unit="rt/s", baseline="raw",
            base_median_us=base),
        row("(e) daemon ShowModel via client lib", r["daemon_show"]["median_us"], r["daemon_show"]["p99_us"],
            throughput=1e6 / r["daemon_show"]["median_us"], throughput_unit="rt/s", baseline="raw",
            base_median_us=base),
    ]
    ping_ratio = r["daemon_ping"]["ratio_to_raw"]
    return [{
        "title": f"1. Transport hop ({r['endpoint_kind']}; echo peer and daemon in other processes)",
        "notes": [
            f"transport overhead over raw: {r['single']['overhead_us']:+.1f} µs per round trip "
            f"(trio floor {r['floor']['overhead_us']:+.1f} µs); daemon Ping {r['daemon_ping']['overhead_us']:+.1f} µs; "
            f"daemon CPU per Ping {r['daemon_cpu_us_per_ping']:.1f} µs (/proc schedstat, all threads)",
            f"(c) median of {len(multi['rounds'])} rounds; best round {multi['per_second_best']:,.0f} rt/s; "
            "its ratio column is throughput relative to (a)'s 1/median",
        ],
        "rows": rows,
        "targets": [
            target("transport: daemon control round trip (Ping) / raw pyzmq", "≤ 2×", f"{ping_ratio:.2f}×",
                   ping_ratio <= 2.0),
            target("transport: multiplexed round trips (100 tasks)", "≥ 25,000/s",
                   f"{multi['per_second_median']:,.0f}/s", multi["per_second_median"] >= 25_000),
        ],
        "raw": r,
    }]


def main() -> None:
    from bench._common import print_section

    args = sys.argv[1:]
    t0 = time.perf_counter()
    for section in sections("--quick" in args, "--tcp" in args):
        print_section(section)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
