"""HTTP gateway overhead: the same chat completion straight to the provider vs through the gateway.

    python bench/gateway_bench.py [--quick]

Setup (three processes, as in turn_bench): the fake provider (``bench/fake_provider.py``: the test
suite's strict OpenAI fake over real HTTP, zero latency; model ``cN`` streams N chunks), the daemon
(``python -m orchestrator serve --http 127.0.0.1:PORT`` with an ``openai_compatible`` provider at
the fake) and this process as the client, ``httpx.AsyncClient`` under trio for both paths, rounds
interleaved:

* direct (the baseline): POST the exact body the daemon sent upstream (captured by the fake) and
  read the SSE answer, JSON-decoding every ``data:`` line;
* gateway: POST ``/v1/chat/completions`` (``model: fake:cN``) to the daemon — ASGI app → gateway
  actor → router → planner → adapter → provider and back — non-streaming (one JSON body) or
  streaming (the same per-line decoding as direct).

The non-streaming gateway request is compared with the direct streamed call of the same answer:
that is the upstream call the daemon makes for it. Added time per streamed chunk is the slope
between the 8- and 200-chunk streams: ((gw200 − direct200) − (gw8 − direct8)) / 192.
"""
from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import trio  # noqa: E402

from bench._common import (  # noqa: E402
    DaemonProcess, FakeProvider, closing_all, cpu_delta_ns, models_yaml, routing_yaml, row, short_tmpdir, summary_us,
    target,
)
from bench.turn_bench import daemon_turn  # noqa: E402
from orchestrator.client import open_client  # noqa: E402

SMALL, LONG = 8, 200
MESSAGES = [{"role": "user", "content": "Summarise the session manager in one sentence."}]
TARGET_ADDED_MS = 2.0
TARGET_PER_CHUNK_US = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayDaemon(DaemonProcess):
    """``orchestrator serve --http 127.0.0.1:PORT`` on a temporary home."""

    def __init__(self, models: str, routing: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(models, routing, log_level="warning", serve_args=("--http", f"127.0.0.1:{self.port}"))

    def _wait_ready(self, timeout: float = 30.0) -> None:
        super()._wait_ready(timeout)   # the actors run; the HTTP server may still be binding
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited ({self.proc.returncode}):\n{self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway not ready within {timeout}s:\n{self.log_path.read_text()[-2000:]}")


async def stream_call(http: httpx.AsyncClient, url: str, body: dict, headers: dict) -> tuple[float, int]:
    """(total µs, content chunks) of one streamed chat completion."""
    t0 = time.perf_counter_ns()
    chunks = 0
    async with http.stream("POST", url, json=body, headers=headers) as resp:
        assert resp.status_code == 200, resp.status_code
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
    return (time.perf_counter_ns() - t0) / 1000, chunks


async def plain_call(http: httpx.AsyncClient, url: str, body: dict) -> tuple[float, int]:
    t0 = time.perf_counter_ns()
    resp = await http.post(url, json=body)
    assert resp.status_code == 200, resp.status_code
    text = resp.json()["choices"][0]["message"]["content"]
    return (time.perf_counter_ns() - t0) / 1000, text.count(" tok")


async def _measure(fake: FakeProvider, gw: GatewayDaemon, quick: bool) -> dict[str, list[float]]:
    rounds, n = (3, 20) if quick else (8, 50)
    long_n = 5 if quick else 15
    direct_url = fake.base_url + "/chat/completions"
    gw_url = gw.url + "/v1/chat/completions"
    sse = {"accept": "text/event-stream"}

    def gw_body(chunks: int, stream: bool) -> dict:
        return {"model": f"fake:c{chunks}", "messages": MESSAGES, "stream": stream}

    async with httpx.AsyncClient(timeout=60) as http, open_client(gw.endpoint) as client:
        for chunks in (SMALL, LONG):   # warm-up; the fake captures what the daemon sends upstream
            for _ in range(3):
                await stream_call(http, gw_url, gw_body(chunks, True), sse)
                await plain_call(http, gw_url, gw_body(chunks, False))
        for _ in range(3):
            await daemon_turn(client, (await client.open_session()).session_id, MESSAGES[0]["content"])
        direct = {c: fake.request_body(f"c{c}") for c in (SMALL, LONG)}
        res: dict[str, list[float]] = {k: [] for k in (
            "direct8", "gw_plain8", "gw_stream8", "socket8", "direct200", "gw_stream200")}
        cpu: dict[str, list[float]] = {k: [] for k in ("gw_plain8", "gw_stream8", "socket8", "gw_stream200")}

        async def socket_turn() -> tuple[float, int]:
            sid = (await client.open_session()).session_id    # outside the timed region, as in turn_bench
            _, total, chunks = await daemon_turn(client, sid, MESSAGES[0]["content"])
            return total, chunks

        async def block(key: str, count: int, call, expect: int) -> None:
            before = gw.thread_cpu_ns()   # nanoseconds per thread: clock ticks (10 ms) are too coarse here
            for _ in range(count):
                us, got = await call()
                # The daemon coalesces the upstream chunks of one network read into one delta (every byte,
                # in order), so a stream may arrive in fewer chunks than the upstream sent — never more.
                assert 1 <= got <= expect, (key, got)
                res[key].append(us)
            if key in cpu:
                cpu[key].append(cpu_delta_ns(before, gw.thread_cpu_ns()) / count / 1000)

        for _ in range(rounds):
            await block("direct8", n, lambda: stream_call(http, direct_url, direct[SMALL], sse), SMALL)
            await block("gw_plain8", n, lambda: plain_call(http, gw_url, gw_body(SMALL, False)), SMALL)
            await block("gw_stream8", n, lambda: stream_call(http, gw_url, gw_body(SMALL, True), sse), SMALL)
            await block("socket8", n, socket_turn, SMALL)
            await block("direct200", long_n, lambda: stream_call(http, direct_url, direct[LONG], sse), LONG)
            await block("gw_stream200", long_n, lambda: stream_call(http, gw_url, gw_body(LONG, True), sse), LONG)
        res.update({f"cpu_{k}": v for k, v in cpu.items()})
    return res


def run(quick: bool = False) -> dict:
    dump = short_tmpdir("obench-gwdump-")
    fake = FakeProvider(dump)
    try:
        gw = GatewayDaemon(models_yaml(fake.base_url, [SMALL, LONG]), routing_yaml(f"fake:c{SMALL}", {}))
    except BaseException:
        fake.close()
        raise
    with closing_all(fake, gw):
        samples = trio.run(_measure, fake, gw, quick)
    return {k: summary_us(v) for k, v in samples.items()}


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)
    d8, p8, s8, k8, d200, s200 = (r[k] for k in ("direct8", "gw_plain8", "gw_stream8", "socket8", "direct200",
                                                  "gw_stream200"))

    def added(a: dict, b: dict, key: str) -> float:
        return (a[key] - b[key]) / 1000

    plain_p50, plain_p99 = added(p8, d8, "median_us"), added(p8, d8, "p99_us")
    s8_p50, s8_p99 = added(s8, d8, "median_us"), added(s8, d8, "p99_us")
    s200_p50 = added(s200, d200, "median_us")
    per_chunk = ((s200["median_us"] - d200["median_us"]) - (s8["median_us"] - d8["median_us"])) / (LONG - SMALL)
    c_plain, c8, c200 = (r[f"cpu_gw_{k}"]["median_us"] for k in ("plain8", "stream8", "stream200"))
    c_socket = r["cpu_socket8"]["median_us"]
    k8_p50 = added(k8, d8, "median_us")
    cpu_chunk = (c200 - c8) / (LONG - SMALL)
    return [{
        "title": "8. HTTP gateway (OpenAI chat completions, zero-latency fake provider)",
        "notes": [f"added at p50 / p99: non-streaming {plain_p50:+.2f} / {plain_p99:+.2f} ms, "
                  f"{SMALL}-chunk stream {s8_p50:+.2f} / {s8_p99:+.2f} ms, {LONG}-chunk stream {s200_p50:+.2f} ms",
                  f"added per streamed chunk (slope {SMALL}→{LONG} chunks) = {per_chunk:.1f} µs; "
                  f"n={s8['n']} ({SMALL}) / {s200['n']} ({LONG}) per row",
                  f"daemon CPU per gateway request (whole daemon: HTTP server, routing, planner, provider "
                  f"client; less load-sensitive than wall time): non-streaming {c_plain / 1000:.2f} ms, "
                  f"{SMALL}-chunk stream {c8 / 1000:.2f} ms, {LONG}-chunk stream {c200 / 1000:.2f} ms "
                  f"→ {cpu_chunk:.1f} µs per chunk; "
                  f"the socket client's {SMALL}-chunk turn: {c_socket / 1000:.2f} ms",
                  f"the same daemon's ZeroMQ socket path (orchestrator.client, fresh session per turn) adds "
                  f"{k8_p50:+.2f} ms at p50 in this run: gateway / socket added = "
                  f"{s8_p50 / k8_p50 if k8_p50 > 0 else float('nan'):.2f}×"],
        "rows": [
            row(f"direct: {SMALL}-chunk stream", d8["median_us"], d8["p99_us"], baseline="(baseline)", ratio=1.0),
            row("gateway: non-streaming", p8["median_us"], p8["p99_us"], baseline=f"direct {SMALL}",
                base_median_us=d8["median_us"]),
            row(f"gateway: {SMALL}-chunk stream", s8["median_us"], s8["p99_us"], baseline=f"direct {SMALL}",
                base_median_us=d8["median_us"]),
            row(f"socket client: {SMALL}-chunk turn", k8["median_us"], k8["p99_us"], baseline=f"direct {SMALL}",
                base_median_us=d8["median_us"]),
            row(f"direct: {LONG}-chunk stream", d200["median_us"], d200["p99_us"], baseline="(baseline)", ratio=1.0),
            row(f"gateway: {LONG}-chunk stream", s200["median_us"], s200["p99_us"], baseline=f"direct {LONG}",
                base_median_us=d200["median_us"]),
        ],
        "targets": [
            target("gateway: added at p50, non-streaming", f"≤ {TARGET_ADDED_MS:g} ms", f"{plain_p50:+.2f} ms",
                   plain_p50 <= TARGET_ADDED_MS),
            target(f"gateway: added at p50, {SMALL}-chunk stream", f"≤ {TARGET_ADDED_MS:g} ms", f"{s8_p50:+.2f} ms",
                   s8_p50 <= TARGET_ADDED_MS),
            target("gateway: added per streamed chunk", f"≤ {TARGET_PER_CHUNK_US:g} µs", f"{per_chunk:.1f} µs",
                   per_chunk <= TARGET_PER_CHUNK_US),
        ],
        "raw": r,
    }]


if __name__ == "__main__":
    from bench._common import print_section

    for section in sections("--quick" in sys.argv[1:]):
        print_section(section)
