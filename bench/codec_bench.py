"""Codec: ``protocol.codec.encode``/``decode`` of whole envelopes vs raw msgpack of the same data.

    python bench/codec_bench.py [--quick]

Messages: a 1 KB chat message (``StartTurn`` with 1,024 characters of text, and a ``History``
holding one 1 KB user message), the smallest control message (``Ping``), and the streaming hot
path (``EventNotice`` carrying one ``text.delta``: one per streamed chunk).

The baseline, measured in the same run with rounds interleaved, is ``msgpack.packb`` /
``msgpack.unpackb`` of exactly the 8-item array ``encode`` produces (the body already
unstructured), so ``ratio`` reads "what cattrs, tags and checks cost on top of msgpack itself".
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack  # noqa: E402

from bench._common import row  # noqa: E402
from protocol import events as ev  # noqa: E402
from protocol.canonical import Message, Role, TextBlock  # noqa: E402
from protocol.codec import Envelope, _fast, decode, encode  # noqa: E402
from protocol.messages import TAG_OF, EventNotice, History, Ping, StartTurn  # noqa: E402

TEXT_1K = ("The quick brown fox jumps over the lazy dog. " * 30)[:1024]


def messages() -> dict[str, Envelope]:
    kw = dict(recipient="session", sender="c0123456789/client", msg_id="deadbeef1f", correlation_id=None)
    return {
        "StartTurn 1 KB": Envelope(StartTurn("s_0123456789ab", TEXT_1K, workspace="/home/user/project"), **kw),
        "History 1 msg 1 KB": Envelope(History("s_0123456789ab", (
            Message(Role.USER, (TextBlock(TEXT_1K),), id="t_0123456789ab:u"),)), **kw),
        "Ping": Envelope(Ping(), recipient="control", sender="c0123456789/client", msg_id="deadbeef20"),
        "EventNotice text.delta": Envelope(EventNotice("s_0123456789ab", ev.TextDelta("t_0123456789ab", " tok")),
                                           recipient="c0123456789/client", sender="n1/session", msg_id="deadbeef21"),
    }


def _raw_array(env: Envelope) -> list:
    return [env.version[0], env.version[1], TAG_OF[type(env.body)], env.msg_id, env.correlation_id, env.sender,
            env.recipient, _fast.unstructure(env.body)]


def _loop(fn, arg, n: int) -> float:
    """Mean µs per call over a tight loop of n calls (one timer pair: µs-scale work)."""
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in range(n):
        fn(arg)
    return (clock() - t0) / n / 1000


def run(quick: bool = False) -> dict:
    rounds, n = (5, 2_000) if quick else (15, 20_000)
    envs = messages()
    packb = msgpack.packb
    unpackb = msgpack.unpackb

    def raw_pack(data):
        return packb(data, use_bin_type=True)

    def raw_unpack(frame):
        return unpackb(frame, raw=False, strict_map_key=False)

    cases = {}
    for name, env in envs.items():
        frame = encode(env)
        assert decode(frame) == env, name
        data = _raw_array(env)
        assert raw_pack(data) == frame
        cases[name] = (env, frame, data)
    series: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):  # each round: every case, baseline and codec back to back
        for name, (env, frame, data) in cases.items():
            for op, fn, arg in (("raw pack", raw_pack, data), ("encode", encode, env),
                                ("raw unpack", raw_unpack, frame), ("decode", decode, frame)):
                series.setdefault((name, op), []).append(_loop(fn, arg, n))
    out: dict = {"rounds": rounds, "calls_per_round": n, "cases": {}}
    for name, (_, frame, _) in cases.items():
        case = out["cases"][name] = {"frame_bytes": len(frame)}
        for op in ("raw pack", "encode", "raw unpack", "decode"):
            samples = series[(name, op)]
            # Per-round means: the median round is the code's cost, the worst round shows the noise.
            case[op] = {"median_us": statistics.median(samples), "p99_us": max(samples)}
    return out


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)
    rows, targets = [], []  # no targets: see the note
    for name, case in r["cases"].items():
        for op, base in (("encode", "raw pack"), ("decode", "raw unpack")):
            b, c = case[base], case[op]
            rows.append(row(f"{name} ({case['frame_bytes']} B): msgpack {base.split()[1]}", b["median_us"], b["p99_us"],
                            throughput=1e6 / b["median_us"], throughput_unit="msg/s", baseline="(baseline)",
                            ratio=1.0))
            rows.append(row(f"{name}: codec {op}", c["median_us"], c["p99_us"],
                            throughput=1e6 / c["median_us"], throughput_unit="msg/s",
                            baseline=f"msgpack {base.split()[1]}", base_median_us=b["median_us"]))
    chat = r["cases"]["StartTurn 1 KB"]
    # No target in the issue for the codec; DESIGN §7's measured figures are the reference.
    return [{
        "title": "6. Codec (µs per message; p99 column = the worst round's mean)",
        "notes": [f"{r['rounds']} interleaved rounds × {r['calls_per_round']} calls per op; "
                  "baseline = msgpack.packb/unpackb of the identical 8-item envelope array",
                  f"1 KB chat message (StartTurn): encode {chat['encode']['median_us']:.1f} µs, decode "
                  f"{chat['decode']['median_us']:.1f} µs (DESIGN §7 reference: ≈ 5 µs / ≈ 6 µs; no target)"],
        "rows": rows, "targets": targets, "raw": r,
    }]


if __name__ == "__main__":
    from bench._common import print_section

    for section in sections("--quick" in sys.argv[1:]):
        print_section(section)
