"""Round-trip cost of protocol.transport against raw synchronous pyzmq.

    python bench/transport_bench.py [--quick]

All three measurements talk to the same out-of-process ROUTER echo peer
(tests/transport_peer.py) over loopback TCP:

(a) raw pyzmq DEALER, send/recv in a loop: the baseline;
(f) one trio task driving a raw pyzmq DEALER itself (EVENTS + wait_readable,
    no owner task, fine only for a single task): what any trio integration
    pays just for sleeping in trio's event loop, so (b) - (f) is the cost of
    the owner-task design;
(b) one trio task over our transport, same loop;
(c) 100 trio tasks multiplexed over one transport DEALER, replies routed
    back to their task by a dispatcher: round trips per second.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol.transport import ANY_TCP, open_zmq_socket  # noqa: E402

PEER = ROOT / "tests" / "transport_peer.py"
PAYLOAD = b"x" * 64


def _start_peer() -> tuple[subprocess.Popen[bytes], str]:
    peer = subprocess.Popen(
        [sys.executable, str(PEER), ANY_TCP, "--bind"],
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


def run(quick: bool) -> dict:
    rounds, per_round, per_task = (3, 500, 200) if quick else (8, 2_000, 1_000)
    ctx = zmq.Context()
    peer, endpoint = _start_peer()
    try:
        # Alternate raw and trio rounds so drift in machine load hits both alike.
        raw_samples: list[int] = []
        floor_samples: list[int] = []
        trio_samples: list[int] = []
        for _ in range(rounds):
            raw_samples += bench_raw(ctx, endpoint, per_round, warmup=100)
            floor_samples += trio.run(bench_trio_floor, ctx, endpoint, per_round, 100)
            trio_samples += trio.run(bench_single, ctx, endpoint, per_round, 100)
        raw, floor, single = _summary(raw_samples), _summary(floor_samples), _summary(trio_samples)
        for row in (floor, single):
            row["ratio_to_raw"] = row["median_us"] / raw["median_us"]
            row["overhead_us"] = row["median_us"] - raw["median_us"]
        multi = trio.run(bench_multiplexed, ctx, endpoint, 100, per_task)
    finally:
        _stop_peer(peer)
        ctx.term()
    return {"raw": raw, "trio_floor": floor, "trio_single": single, "trio_multiplexed_100": multi}


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    t0 = time.perf_counter()
    result = run(quick)
    raw, floor, single = result["raw"], result["trio_floor"], result["trio_single"]
    multi = result["trio_multiplexed_100"]
    print(f"{'measurement':<36}{'median µs':>11}{'p99 µs':>10}{'vs raw':>9}{'rt/s':>10}")
    print(f"{'(a) raw pyzmq DEALER, sync':<36}{raw['median_us']:>11.1f}{raw['p99_us']:>10.1f}{'1.00x':>9}{'':>10}")
    print(
        f"{'(f) trio, 1 task on raw pyzmq':<36}{floor['median_us']:>11.1f}{floor['p99_us']:>10.1f}"
        f"{floor['ratio_to_raw']:>8.2f}x{'':>10}"
    )
    print(
        f"{'(b) trio transport, 1 task':<36}{single['median_us']:>11.1f}{single['p99_us']:>10.1f}"
        f"{single['ratio_to_raw']:>8.2f}x{'':>10}"
    )
    print(f"{'(c) trio transport, 100 tasks':<36}{'':>11}{'':>10}{'':>9}{multi['per_second']:>10.0f}")
    print(
        f"\nper-round-trip overhead over raw: {single['overhead_us']:+.1f} µs "
        f"(trio floor {floor['overhead_us']:+.1f} µs); "
        f"{multi['round_trips']} multiplexed round trips in {multi['seconds']:.2f} s; "
        f"total {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
