"""Hypercorn's own floor: what its trio worker costs per request with a minimal ASGI app.

    python bench/gateway_floor_bench.py [--quick]

Three servers, each its own process, one ``httpx.AsyncClient`` (this process) for all, rounds
interleaved: the fake provider (``bench/fake_provider.py``: a lean hand-written h11 server, the
gateway bench's direct baseline), hypercorn's trio worker serving a minimal ASGI app (reads the
body, answers a fixed JSON body in one ``http.response.body``, or a fixed 8-chunk SSE stream in
one write), and the daemon's own gateway (``GET /healthz``: hypercorn + the gateway app, no turn).
Wall time per request and each server's CPU per request. The minimal app minus the fake is what
hypercorn itself adds; the gateway bench's added time minus that is ours.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import trio  # noqa: E402

from bench._common import (  # noqa: E402
    FakeProvider, closing_all, cpu_delta_ns, models_yaml, routing_yaml, short_tmpdir, summary_us, thread_cpu_ns,
)
from bench.gateway_bench import MESSAGES, GatewayDaemon, _free_port, plain_call, stream_call  # noqa: E402

_BODY = json.dumps({"id": "x", "object": "chat.completion", "model": "fake:c8", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": " tok" * 8}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}}).encode()
_SSE = b"".join(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": " tok"}}]}).encode()
                + b"\n\n" for _ in range(8)) + b"data: [DONE]\n\n"


async def minimal_app(scope: dict, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    stream = scope["path"].endswith("stream")
    headers = [(b"content-type", b"text/event-stream")] if stream else [
        (b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _SSE if stream else _BODY, "more_body": False})


def _serve(port: int) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.keep_alive_timeout = 75.0
    print("ready", flush=True)
    trio.run(serve, minimal_app, config)  # type: ignore[arg-type]


class MinimalHypercorn:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port)], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.post(self.url + "/plain", content=b"{}", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)

    def thread_cpu_ns(self) -> dict[int, int]:
        return thread_cpu_ns(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def _measure(fake: FakeProvider, hc: MinimalHypercorn, gw: GatewayDaemon, quick: bool) -> dict:
    rounds, n = (3, 30) if quick else (8, 60)
    sse = {"accept": "text/event-stream"}
    body = {"model": "c8", "messages": MESSAGES, "stream": True}
    res: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        async def healthz() -> tuple[float, int]:
            t0 = time.perf_counter_ns()
            assert (await http.get(gw.url + "/healthz")).status_code == 200
            return (time.perf_counter_ns() - t0) / 1000, 1

        fake_cpu = lambda: thread_cpu_ns(fake.proc.pid)  # noqa: E731
        gw_body = {"model": "fake:c8", "messages": MESSAGES}
        calls = {
            "fake: 8-chunk stream": (fake_cpu, lambda: stream_call(http, fake.base_url + "/chat/completions",
                                                                   body, sse)),
            "hypercorn minimal: json": (hc.thread_cpu_ns, lambda: plain_call(http, hc.url + "/plain", body)),
            "hypercorn minimal: 8-chunk stream": (hc.thread_cpu_ns,
                                                  lambda: stream_call(http, hc.url + "/stream", body, sse)),
            "daemon: GET /healthz": (gw.thread_cpu_ns, healthz),
            "daemon: gateway turn, non-streaming": (gw.thread_cpu_ns, lambda: plain_call(
                http, gw.url + "/v1/chat/completions", gw_body)),
        }
        for _ in range(3):
            for _, call in calls.values():
                await call()
        for _ in range(rounds):
            for key, (cpu_ns, call) in calls.items():
                before = cpu_ns()
                for _ in range(n):
                    us, _got = await call()
                    res.setdefault(key, []).append(us)
                cpu.setdefault(key, []).append(cpu_delta_ns(before, cpu_ns()) / n / 1000)
    return {k: {**summary_us(v), "server_cpu_us": summary_us(cpu[k])["median_us"]} for k, v in res.items()}


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        _serve(int(sys.argv[2]))
        return
    fake = FakeProvider(short_tmpdir("obench-floor-"))
    hc = MinimalHypercorn()
    gw = GatewayDaemon(models_yaml(fake.base_url, [8]), routing_yaml("fake:c8", {}))
    with closing_all(fake, hc, gw):
        r = trio.run(_measure, fake, hc, gw, "--quick" in sys.argv[1:])
    for key, s in r.items():
        print(f"{key:<36} p50 {s['median_us']:8.0f} µs  p99 {s['p99_us']:8.0f} µs  "
              f"server CPU {s['server_cpu_us']:7.0f} µs")


if __name__ == "__main__":
    main()
