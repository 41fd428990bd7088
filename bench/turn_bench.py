"""Turn overhead and streaming relay: the same request straight to the provider vs a full daemon turn.

    python bench/turn_bench.py [--quick]

Setup (three processes, as in a real deployment): the fake provider (``bench/fake_provider.py``,
the test suite's strict OpenAI fake over real HTTP, zero latency) in one process, the daemon
(``python -m orchestrator serve`` with an ``openai_compatible`` provider pointing at the fake) in
another, and this process as the client. Both measurements run from this process, in alternating
rounds, against the same fake process:

* direct (the baseline): ``httpx.AsyncClient`` under trio POSTs the exact body the daemon sent
  (captured by the fake) and streams the SSE answer: every ``data:`` line is JSON-decoded and its
  content delta taken, which is the least a client of the provider must do.
* daemon: ``orchestrator.client`` opens a session (outside the timed region: one fresh session per
  turn, so every request is a first turn with the same body), then ``client.turn`` — session actor
  → router → planner → adapter → provider — and iterates the events to the terminal one.

Time to first token (TTFT) is taken at the first content delta / first ``text.delta`` event; total
time at the end of the HTTP body / at ``turn.completed``.

Why separate processes: in one trio process the fake's sends, the daemon's relay and the client's
reads would be interleaved by one scheduler, so the daemon's "overhead" would include the fake's
and the client's CPU time. Here the daemon's process only does the daemon's work, and the baseline
pays the same fake and the same client-side loop.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import trio  # noqa: E402

from bench._common import (  # noqa: E402
    DaemonProcess, FakeProvider, closing_all, models_yaml, routing_yaml, row, short_tmpdir, summary_us, target,
)
from orchestrator.client import open_client  # noqa: E402
from protocol import events as ev  # noqa: E402

SHORT_MODEL, STREAM_MODEL = "c8", "c2000"
SHORT_TEXT = "Summarise the session manager in one sentence."
STREAM_TEXT = "[stream2000] Explain the turn lock at length."
STREAM_CHUNKS = 2000


def make_stack(extra_models: tuple[int, ...] = ()) -> tuple[FakeProvider, DaemonProcess]:
    dump = short_tmpdir("obench-dump-")
    fake = FakeProvider(dump)
    try:
        models = models_yaml(fake.base_url, [8, STREAM_CHUNKS, *extra_models])
        routing = routing_yaml("fake:c8", {"[stream2000]": f"fake:c{STREAM_CHUNKS}",
                                           **{f"[conc{n}]": f"fake:c{n}" for n in extra_models}})
        daemon = DaemonProcess(models, routing)
    except BaseException:
        fake.close()
        raise
    return fake, daemon


async def direct_stream(http: httpx.AsyncClient, url: str, body: dict) -> tuple[float, float, int]:
    """(ttft µs, total µs, content chunks) of one streamed request straight to the provider."""
    clock = time.perf_counter_ns
    t0 = clock()
    first = 0
    chunks = 0
    async with http.stream("POST", url, json=body, headers={"accept": "text/event-stream"}) as resp:
        assert resp.status_code == 200, resp.status_code
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    if not first:
                        first = clock()
    end = clock()
    return (first - t0) / 1000, (end - t0) / 1000, chunks


async def daemon_turn(client, session_id: str, text: str) -> tuple[float, float, int]:
    """(ttft µs, total µs, text.delta events) of one full turn through the daemon."""
    clock = time.perf_counter_ns
    t0 = clock()
    first = 0
    chunks = 0
    async with client.turn(session_id, text) as turn:
        async for event in turn:
            if type(event) is ev.TextDelta:
                chunks += 1
                if not first:
                    first = clock()
    end = clock()
    if not isinstance(turn.terminal, ev.TurnCompleted):
        raise RuntimeError(f"turn did not complete: {turn.terminal!r}")
    return (first - t0) / 1000, (end - t0) / 1000, chunks


async def _measure(fake: FakeProvider, daemon: DaemonProcess, quick: bool) -> dict:
    short_rounds, short_n = (3, 30) if quick else (8, 60)
    stream_rounds, stream_n = (3, 3) if quick else (5, 4)
    url = fake.base_url + "/chat/completions"
    async with open_client(daemon.endpoint) as client, httpx.AsyncClient(timeout=60) as http:
        async def fresh_session() -> str:
            return (await client.open_session()).session_id

        # Warm-up: imports, adapter and connection pool in the daemon; captures the request bodies.
        for text in (SHORT_TEXT, STREAM_TEXT):
            for _ in range(3):
                await daemon_turn(client, await fresh_session(), text)
        bodies = {m: fake.request_body(m) for m in (SHORT_MODEL, STREAM_MODEL)}
        for m in bodies.values():
            await direct_stream(http, url, m)

        res: dict[str, list[float]] = {k: [] for k in (
            "direct_ttft", "direct_total", "daemon_ttft", "daemon_total",
            "stream_direct", "stream_daemon", "stream_direct_ttft", "stream_daemon_ttft")}
        for _ in range(short_rounds):
            for _ in range(short_n):
                ttft, total, n = await direct_stream(http, url, bodies[SHORT_MODEL])
                assert n == 8, n
                res["direct_ttft"].append(ttft)
                res["direct_total"].append(total)
            for _ in range(short_n):
                sid = await fresh_session()
                ttft, total, n = await daemon_turn(client, sid, SHORT_TEXT)
                assert n == 8, n
                res["daemon_ttft"].append(ttft)
                res["daemon_total"].append(total)
        for _ in range(stream_rounds):
            for _ in range(stream_n):
                ttft, total, n = await direct_stream(http, url, bodies[STREAM_MODEL])
                assert n == STREAM_CHUNKS, n
                res["stream_direct"].append(total)
                res["stream_direct_ttft"].append(ttft)
            for _ in range(stream_n):
                sid = await fresh_session()
                ttft, total, n = await daemon_turn(client, sid, STREAM_TEXT)
                assert n == STREAM_CHUNKS, n
                res["stream_daemon"].append(total)
                res["stream_daemon_ttft"].append(ttft)
        res["request_body_bytes"] = {m: len(json.dumps(b)) for m, b in bodies.items()}
        return res


def run(quick: bool = False) -> dict:
    fake, daemon = make_stack()
    with closing_all(fake, daemon):
        samples = trio.run(_measure, fake, daemon, quick)
    out = {k: summary_us(v) for k, v in samples.items() if isinstance(v, list)}
    out["request_body_bytes"] = samples["request_body_bytes"]
    return out


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)
    d_ttft, d_total = r["direct_ttft"], r["direct_total"]
    t_ttft, t_total = r["daemon_ttft"], r["daemon_total"]
    add_ttft = t_ttft["median_us"] - d_ttft["median_us"]
    add_total = t_total["median_us"] - d_total["median_us"]
    turn = {
        "title": "3. Turn overhead (8-chunk answer, zero-latency fake provider)",
        "notes": [f"fresh session per daemon turn; same request body both ways "
                  f"({r['request_body_bytes'][SHORT_MODEL]} bytes); n={t_total['n']} per row"],
        "rows": [
            row("direct httpx: time to first token", d_ttft["median_us"], d_ttft["p99_us"], baseline="(baseline)",
                ratio=1.0),
            row("daemon turn: time to first token", t_ttft["median_us"], t_ttft["p99_us"],
                baseline="direct TTFT", base_median_us=d_ttft["median_us"]),
            row("direct httpx: total", d_total["median_us"], d_total["p99_us"],
                throughput=1e6 / d_total["median_us"], throughput_unit="req/s", baseline="(baseline)", ratio=1.0),
            row("daemon turn: total", t_total["median_us"], t_total["p99_us"],
                throughput=1e6 / t_total["median_us"], throughput_unit="turns/s",
                baseline="direct total", base_median_us=d_total["median_us"]),
        ],
        "targets": [
            target("turn: daemon adds to median TTFT", "≤ 1 ms", f"{add_ttft / 1000:+.2f} ms", add_ttft <= 1000),
            target("turn: daemon adds to median total", "≤ 1 ms", f"{add_total / 1000:+.2f} ms", add_total <= 1000),
        ],
        "raw": {k: r[k] for k in ("direct_ttft", "direct_total", "daemon_ttft", "daemon_total")},
    }
    s_d, s_t = r["stream_direct"], r["stream_daemon"]
    ratio = s_t["median_us"] / s_d["median_us"]
    per_chunk = (s_t["median_us"] - s_d["median_us"]) / STREAM_CHUNKS
    stream = {
        "title": f"4. Streaming relay ({STREAM_CHUNKS}-chunk answer)",
        "notes": [f"per-chunk added cost = (daemon − direct median) / {STREAM_CHUNKS} = {per_chunk:.1f} µs; "
                  f"n={s_t['n']} per row"],
        "rows": [
            row("direct httpx: whole stream", s_d["median_us"], s_d["p99_us"],
                throughput=STREAM_CHUNKS * 1e6 / s_d["median_us"], throughput_unit="chunks/s",
                baseline="(baseline)", ratio=1.0),
            row("daemon turn: whole stream", s_t["median_us"], s_t["p99_us"],
                throughput=STREAM_CHUNKS * 1e6 / s_t["median_us"], throughput_unit="chunks/s",
                baseline="direct stream", base_median_us=s_d["median_us"]),
        ],
        "targets": [
            target("stream: daemon / direct time", "≤ 1.25×", f"{ratio:.2f}×", ratio <= 1.25),
            target("stream: added per chunk", "≤ 50 µs", f"{per_chunk:.1f} µs", per_chunk <= 50),
        ],
        "raw": {k: r[k] for k in ("stream_direct", "stream_daemon", "stream_direct_ttft", "stream_daemon_ttft")},
    }
    return [turn, stream]


if __name__ == "__main__":
    from bench._common import print_section

    for section in sections("--quick" in sys.argv[1:]):
        print_section(section)
