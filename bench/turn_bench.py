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
time at the end of the HTTP body / at ``turn.completed``. Daemon CPU per turn is the daemon
process's user + system time (/proc/<pid>/stat, every thread) over all daemon turns of a kind,
divided by their number: robust on a noisy machine, since other processes' load is not counted.
The non-streaming turn uses a model configured with ``supports_streaming: false`` (one JSON
answer); its baseline is the same POST answered with one JSON body.

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

SHORT_MODEL, NONSTREAM_MODEL, MID_MODEL, STREAM_MODEL = "c8", "c9", "c200", "c2000"
SHORT_TEXT = "Summarise the session manager in one sentence."
NONSTREAM_TEXT = "[nonstream] Summarise the session manager."
MID_TEXT = "[mid200] Describe the actor kernel."
STREAM_TEXT = "[stream2000] Explain the turn lock at length."
STREAM_CHUNKS = 2000
MID_CHUNKS = 200
TEXTS = {SHORT_MODEL: SHORT_TEXT, NONSTREAM_MODEL: NONSTREAM_TEXT, MID_MODEL: MID_TEXT, STREAM_MODEL: STREAM_TEXT}


def make_stack(extra_models: tuple[int, ...] = ()) -> tuple[FakeProvider, DaemonProcess]:
    dump = short_tmpdir("obench-dump-")
    fake = FakeProvider(dump)
    try:
        models = models_yaml(fake.base_url, [8, 9, MID_CHUNKS, STREAM_CHUNKS, *extra_models], non_streaming=(9,))
        routing = routing_yaml("fake:c8", {"[stream2000]": f"fake:c{STREAM_CHUNKS}", "[nonstream]": "fake:c9",
                                           "[mid200]": f"fake:c{MID_CHUNKS}",
                                           **{f"[conc{n}]": f"fake:c{n}" for n in extra_models}})
        daemon = DaemonProcess(models, routing)
    except BaseException:
        fake.close()
        raise
    return fake, daemon


async def direct_stream(http: httpx.AsyncClient, url: str, body: dict) -> tuple[float, float, int]:
    """(ttft µs, total µs, content chunks) of one request straight to the provider (streamed, or
    one JSON body when the request does not ask for a stream)."""
    clock = time.perf_counter_ns
    t0 = clock()
    first = 0
    chunks = 0
    if not body.get("stream"):
        resp = await http.post(url, json=body)
        assert resp.status_code == 200, resp.status_code
        content = resp.json()["choices"][0]["message"]["content"]
        end = clock()
        return (end - t0) / 1000, (end - t0) / 1000, 1 if content else 0
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
    """(ttft µs, total µs, text bytes / len(" tok")) of one full turn through the daemon.

    Counted in text, not events: a daemon may hand several provider chunks to the client in one
    ``text.delta`` (coalesced per network read); every byte must still arrive, in order."""
    clock = time.perf_counter_ns
    t0 = clock()
    first = 0
    text_len = 0
    async with client.turn(session_id, text) as turn:
        async for event in turn:
            if type(event) is ev.TextDelta:
                text_len += len(event.text)
                if not first:
                    first = clock()
    end = clock()
    if not isinstance(turn.terminal, ev.TurnCompleted):
        raise RuntimeError(f"turn did not complete: {turn.terminal!r}")
    return (first - t0) / 1000, (end - t0) / 1000, text_len // len(CHUNK_TEXT)


CHUNK_TEXT = " tok"  # bench/fake_provider.py's chunk


def expected_chunks(model: str) -> int:
    return 1 if model == NONSTREAM_MODEL else int(model[1:])


async def _measure(fake: FakeProvider, daemon: DaemonProcess, quick: bool) -> dict:
    plan = {  # model → (rounds, turns per round)
        SHORT_MODEL: (3, 30) if quick else (8, 60),
        NONSTREAM_MODEL: (2, 30) if quick else (4, 60),
        MID_MODEL: (2, 8) if quick else (4, 15),
        STREAM_MODEL: (3, 3) if quick else (5, 4),
    }
    url = fake.base_url + "/chat/completions"
    async with open_client(daemon.endpoint) as client, httpx.AsyncClient(timeout=60) as http:
        async def fresh_session() -> str:
            return (await client.open_session()).session_id

        # Warm-up: imports, adapter and connection pool in the daemon; captures the request bodies.
        for text in TEXTS.values():
            for _ in range(3):
                await daemon_turn(client, await fresh_session(), text)
        bodies = {m: fake.request_body(m) for m in TEXTS}
        for m in bodies.values():
            await direct_stream(http, url, m)

        res: dict = {"request_body_bytes": {m: len(json.dumps(b)) for m, b in bodies.items()}}
        for model, (rounds, n) in plan.items():
            want = 9 if model == NONSTREAM_MODEL else expected_chunks(model)
            d_ttft, d_total, t_ttft, t_total = [], [], [], []
            cpu_s = 0.0
            for _ in range(rounds):
                for _ in range(n):
                    ttft, total, got = await direct_stream(http, url, bodies[model])
                    assert got == expected_chunks(model), (model, got)
                    d_ttft.append(ttft)
                    d_total.append(total)
                sessions = [await fresh_session() for _ in range(n)]
                cpu0 = daemon.cpu_s()
                for sid in sessions:
                    ttft, total, got = await daemon_turn(client, sid, TEXTS[model])
                    assert got == want, (model, got)
                    t_ttft.append(ttft)
                    t_total.append(total)
                cpu_s += daemon.cpu_s() - cpu0
            res[model] = {"direct_ttft": summary_us(d_ttft), "direct_total": summary_us(d_total),
                          "daemon_ttft": summary_us(t_ttft), "daemon_total": summary_us(t_total),
                          "daemon_cpu_us_per_turn": cpu_s * 1e6 / len(t_total)}
        return res


def run(quick: bool = False) -> dict:
    fake, daemon = make_stack()
    with closing_all(fake, daemon):
        return trio.run(_measure, fake, daemon, quick)


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)
    s = r[SHORT_MODEL]
    d_ttft, d_total, t_ttft, t_total = s["direct_ttft"], s["direct_total"], s["daemon_ttft"], s["daemon_total"]
    add = {k: s["daemon_" + k]["median_us"] - s["direct_" + k]["median_us"] for k in ("ttft", "total")}
    add99 = {k: s["daemon_" + k]["p99_us"] - s["direct_" + k]["p99_us"] for k in ("ttft", "total")}
    ns, mid = r[NONSTREAM_MODEL], r[MID_MODEL]
    turn = {
        "title": "3. Turn overhead (8-chunk answer, zero-latency fake provider) and daemon CPU per turn",
        "notes": [f"fresh session per daemon turn; same request body both ways "
                  f"({r['request_body_bytes'][SHORT_MODEL]} bytes); n={t_total['n']} per row",
                  "overhead at p99 = daemon p99 − direct p99 (same run, interleaved rounds)",
                  f"daemon CPU per turn (/proc/<pid>/stat, all threads): 8-chunk stream "
                  f"{s['daemon_cpu_us_per_turn'] / 1000:.2f} ms, non-streaming "
                  f"{ns['daemon_cpu_us_per_turn'] / 1000:.2f} ms (n={ns['daemon_total']['n']}), "
                  f"{MID_CHUNKS}-chunk stream {mid['daemon_cpu_us_per_turn'] / 1000:.2f} ms "
                  f"(n={mid['daemon_total']['n']})"],
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
            row("direct httpx: non-streaming", ns["direct_total"]["median_us"], ns["direct_total"]["p99_us"],
                baseline="(baseline)", ratio=1.0),
            row("daemon turn: non-streaming", ns["daemon_total"]["median_us"], ns["daemon_total"]["p99_us"],
                baseline="direct non-streaming", base_median_us=ns["direct_total"]["median_us"]),
            row(f"direct httpx: {MID_CHUNKS} chunks", mid["direct_total"]["median_us"], mid["direct_total"]["p99_us"],
                baseline="(baseline)", ratio=1.0),
            row(f"daemon turn: {MID_CHUNKS} chunks", mid["daemon_total"]["median_us"], mid["daemon_total"]["p99_us"],
                baseline=f"direct {MID_CHUNKS} chunks", base_median_us=mid["direct_total"]["median_us"]),
        ],
        "targets": [
            target("turn: daemon adds to median TTFT", "≤ 1 ms", f"{add['ttft'] / 1000:+.2f} ms", add["ttft"] <= 1000),
            target("turn: daemon adds to median total", "≤ 1 ms", f"{add['total'] / 1000:+.2f} ms",
                   add["total"] <= 1000),
            target("turn: daemon adds to p99 TTFT", "≤ 4 ms", f"{add99['ttft'] / 1000:+.2f} ms",
                   add99["ttft"] <= 4000),
            target("turn: daemon adds to p99 total", "≤ 4 ms", f"{add99['total'] / 1000:+.2f} ms",
                   add99["total"] <= 4000),
            target("cpu: daemon CPU per non-streaming turn", "≤ 1.5 ms",
                   f"{ns['daemon_cpu_us_per_turn'] / 1000:.2f} ms", ns["daemon_cpu_us_per_turn"] <= 1500),
            target(f"cpu: daemon CPU per {MID_CHUNKS}-chunk streamed turn", "≤ 5 ms",
                   f"{mid['daemon_cpu_us_per_turn'] / 1000:.2f} ms", mid["daemon_cpu_us_per_turn"] <= 5000),
        ],
        "raw": r,
    }
    big = r[STREAM_MODEL]
    s_d, s_t = big["direct_total"], big["daemon_total"]
    ratio = s_t["median_us"] / s_d["median_us"]
    per_chunk = (s_t["median_us"] - s_d["median_us"]) / STREAM_CHUNKS
    stream = {
        "title": f"4. Streaming relay ({STREAM_CHUNKS}-chunk answer)",
        "notes": [f"per-chunk added cost = (daemon − direct median) / {STREAM_CHUNKS} = {per_chunk:.1f} µs; "
                  f"n={s_t['n']} per row; daemon CPU per chunk "
                  f"{big['daemon_cpu_us_per_turn'] / STREAM_CHUNKS:.1f} µs"],
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
            target("stream: added per chunk", "≤ 25 µs", f"{per_chunk:.1f} µs", per_chunk <= 25),
        ],
        "raw": {},
    }
    return [turn, stream]


if __name__ == "__main__":
    from bench._common import print_section

    for section in sections("--quick" in sys.argv[1:]):
        print_section(section)
