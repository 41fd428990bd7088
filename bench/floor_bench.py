"""The floor: what one non-streaming turn costs with no actors at all, next to the daemon's turn.

    python bench/floor_bench.py [--quick]

Issue 16 asks for ≤ 1.5 ms of daemon CPU per non-streaming turn. This benchmark measures what the
*work* of a turn costs in this Python, trio, pyzmq and SQLite — in one trio task, no actors, no
mailboxes, no routing, no supervision — so the daemon's figure can be read against it:

- the server (``--serve``, its own process) owns a ZeroMQ ROUTER on ipc the way row (f) of the
  transport benchmark drives a socket (one task, raw pyzmq, EVENTS + ``wait_readable``);
- per turn it decodes the client's ``StartTurn`` envelope with the real codec, answers
  ``TurnAccepted``, commits the start phase to SQLite (WAL, synchronous=NORMAL, as the store:
  turn row, user message, event), POSTs the request to the same zero-latency fake provider through
  httpcore (as the provider seam), parses the JSON answer, sends ``turn.started``, one
  ``text.delta`` and ``turn.completed`` as ``EventNotice`` envelopes, and commits the end phase
  (assistant message, turn end, event, cost row) before the terminal event goes out;
- the client is a raw synchronous pyzmq DEALER.

The real daemon runs the same turn (``bench/turn_bench.py``'s stack, fresh session per turn) in the
same run, interleaved; both CPU figures are read from /proc for the whole process (all threads).
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    closing_all, process_cpu_s, row, short_tmpdir,
)

MODEL = "c9"           # turn_bench's non-streaming model: one JSON body of 9 chunks' text
STREAM_MODEL = "c200"  # turn_bench's 200-chunk model
TEXT = "[nonstream] say something"
STREAM_TEXT = "[mid200]"

SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (id TEXT PRIMARY KEY, session_id TEXT, status TEXT, model TEXT,
                                  started_at REAL, ended_at REAL);
CREATE TABLE IF NOT EXISTS messages (session_id TEXT, seq INTEGER, turn_id TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS events (turn_id TEXT, kind TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS costs (turn_id TEXT, model TEXT, input_tokens INTEGER, output_tokens INTEGER,
                                  usd TEXT);
"""


async def _serve(endpoint: str, base_url: str, db_path: str, http_kind: str) -> None:
    import httpcore
    import trio
    import zmq

    from protocol import events as ev
    from protocol.codec import Envelope, decode, encode, new_id
    from protocol.messages import EventNotice, TurnAccepted
    from protocol.canonical import Usage

    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    ctx: zmq.Context = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    url = base_url.rstrip("/") + "/chat/completions"
    headers = [(b"content-type", b"application/json"), (b"host", url.split("/")[2].encode())]
    print("ready", flush=True)

    async def receive() -> list[bytes]:
        while not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            await trio.lowlevel.wait_readable(sock.FD)
        return sock.recv_multipart(zmq.NOBLOCK)

    host, _, port = url.split("/")[2].partition(":")
    path = "/" + url.split("/", 3)[3]
    raw_stream = await trio.open_tcp_stream(host, int(port)) if http_kind == "raw" else None

    async def post_raw(body: bytes) -> bytes:
        """The least any client can do: one write, reads until the body is complete (the fake sends
        Content-Length for a non-streaming answer). Not a usable HTTP client: a lower bound."""
        assert raw_stream is not None
        await raw_stream.send_all(b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
                                  b"content-length: %d\r\n\r\n%s" % (path.encode(), headers[1][1], len(body), body))
        buf = b""
        while True:
            buf += await raw_stream.receive_some(65536)
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    return rest[:length]

    # "seam": the daemon's own provider connections (actors/providers/_conn.py: trio + httptools)
    from actors.providers._conn import OriginPool, Timeouts, head_block

    seam = OriginPool(b"http", host, int(port), ssl_context=None, max_connections=100, max_keepalive=20,
                      keepalive_expiry=5.0) if http_kind == "seam" else None
    seam_head = b"POST %s HTTP/1.1\r\n%s" % (path.encode(), head_block([("host", headers[1][1].decode()),
                                                                         ("content-type", "application/json")]))
    timeouts = Timeouts(10.0, 60.0, 10.0)

    async def seam_post(body: bytes):   # noqa: ANN202 — the seam's Response
        assert seam is not None
        return await seam.request(seam_head + b"content-length: %d\r\n\r\n" % len(body), body, timeouts)

    async with httpcore.AsyncConnectionPool() as http:
        seq = 0
        while True:
            frames = await receive()
            ident, env = frames[0], decode(frames[-1])
            start = env.body
            turn_id = "t_" + new_id()
            sock.send_multipart([ident, encode(Envelope(TurnAccepted(start.session_id, turn_id), env.sender,
                                                        "session", correlation_id=env.msg_id))])
            user = json.dumps({"role": "user", "content": [{"type": "text", "text": start.text}]})
            with db:
                db.execute("BEGIN")
                db.execute("INSERT INTO turns VALUES (?,?,?,?,?,NULL)", (turn_id, start.session_id, "running", MODEL,
                                                                        time.time()))
                db.execute("INSERT INTO messages VALUES (?,?,?,?)", (start.session_id, seq, turn_id, user))
                db.execute("INSERT INTO events VALUES (?,?,?)", (turn_id, "turn.started", "{}"))
            model = STREAM_MODEL if start.text.startswith(STREAM_TEXT) else MODEL

            def notice(event: ev.Event, ident: bytes = ident, session_id: str = start.session_id,
                       to: str = env.sender) -> None:
                sock.send_multipart([ident, encode(Envelope(EventNotice(session_id, event), to, "session"))])

            if model == STREAM_MODEL:   # SSE: one text.delta per network read, as the daemon coalesces
                body = json.dumps({"model": model, "messages": [{"role": "user", "content": start.text}],
                                   "stream": True, "stream_options": {"include_usage": True}}).encode()
                notice(ev.TurnStarted(start.session_id, turn_id, "fake:" + model))
                parts, pending, usage = [], b"", Usage()
                async with contextlib.AsyncExitStack() as stack:
                    if seam is not None:
                        resp = await seam_post(body)
                        stack.push_async_callback(resp.aclose)
                    else:
                        resp = await stack.enter_async_context(http.stream("POST", url, headers=headers, content=body))
                    async for data in resp.aiter_stream():
                        lines = (pending + data).split(b"\n")
                        pending = lines.pop()
                        read = []
                        for line in lines:
                            if line.startswith(b"data: {"):
                                chunk = json.loads(line[6:])
                                for choice in chunk.get("choices") or ():
                                    if (text := (choice.get("delta") or {}).get("content")):
                                        read.append(text)
                                if chunk.get("usage"):
                                    usage = Usage(chunk["usage"]["prompt_tokens"], chunk["usage"]["completion_tokens"])
                        if read:
                            parts += read
                            notice(ev.TextDelta(turn_id, "".join(read)))
                text = "".join(parts)
            else:
                body = json.dumps({"model": model, "messages": [{"role": "user", "content": start.text}],
                                   "stream": False}).encode()
                if seam is not None:
                    resp = await seam_post(body)
                    answer = json.loads(await resp.aread())
                    await resp.aclose()
                elif raw_stream is None:
                    answer = json.loads((await http.request("POST", url, headers=headers, content=body)).content)
                else:
                    answer = json.loads(await post_raw(body))
                text = answer["choices"][0]["message"]["content"]
                usage = Usage(answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"])
                notice(ev.TurnStarted(start.session_id, turn_id, "fake:" + model))
                notice(ev.TextDelta(turn_id, text))
            with db:
                db.execute("BEGIN")
                db.execute("INSERT INTO messages VALUES (?,?,?,?)",
                           (start.session_id, seq + 1, turn_id,
                            json.dumps({"role": "assistant", "content": [{"type": "text", "text": text}]})))
                db.execute("UPDATE turns SET status=?, ended_at=? WHERE id=?", ("completed", time.time(), turn_id))
                db.execute("INSERT INTO events VALUES (?,?,?)", (turn_id, "turn.completed", "{}"))
                db.execute("INSERT INTO costs VALUES (?,?,?,?,?)", (turn_id, MODEL, usage.input_tokens,
                                                                    usage.output_tokens, "0.000001"))
            seq += 2
            notice(ev.TurnCompleted(start.session_id, turn_id, "fake:" + MODEL, usage))


class FloorServer:
    def __init__(self, base_url: str, http_kind: str = "httpcore"):
        self.root = short_tmpdir("obench-floor-")
        self.endpoint = f"ipc://{self.root / 'f.sock'}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", self.endpoint, base_url,
                                      str(self.root / "floor.db"), http_kind], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().split() != [b"ready"]:
            self.proc.kill()
            raise RuntimeError("the floor server did not start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        import shutil

        self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)


def floor_turns(endpoint: str, n: int, text: str = TEXT) -> list[float]:
    """``n`` turns through the floor server; wall µs each."""
    import zmq

    from protocol import events as ev
    from protocol.codec import Envelope, decode, encode
    from protocol.messages import EventNotice, StartTurn

    sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(endpoint)
    out = []
    try:
        for i in range(n):
            t0 = time.perf_counter_ns()
            sock.send(encode(Envelope(StartTurn(f"s{i}", text), "session", "cbench/client")))
            while True:
                env = decode(sock.recv())
                if isinstance(env.body, EventNotice) and isinstance(env.body.event, ev.TurnCompleted):
                    break
            out.append((time.perf_counter_ns() - t0) / 1000)
    finally:
        sock.close(linger=0)
    return out


def run(quick: bool = False) -> dict:
    """Interleaved rounds: direct, floor (httpcore), floor (raw HTTP, non-streaming only), daemon."""
    import statistics

    import httpx
    import trio

    from bench.turn_bench import MID_MODEL, NONSTREAM_MODEL, TEXTS, daemon_turn, direct_stream, make_stack
    from orchestrator.client import open_client

    rounds, per, per_stream = (3, 60, 10) if quick else (6, 150, 25)
    fake, daemon = make_stack()
    kinds = {"ns": (NONSTREAM_MODEL, TEXT, per), "200": (MID_MODEL, STREAM_TEXT + " go", per_stream)}
    with closing_all(fake, daemon):
        servers = {name: FloorServer(fake.base_url, name) for name in FLOORS}
        with closing_all(*servers.values()):
            cpu: dict[str, float] = {}
            wall: dict[str, list[float]] = {}

            def add(key: str, cpu_s: float, walls: list[float]) -> None:
                cpu[key] = cpu.get(key, 0.0) + cpu_s
                wall.setdefault(key, []).extend(walls)

            async def daemon_round(kind: str, count: int) -> tuple[float, list[float]]:
                model, _, _ = kinds[kind]
                async with open_client(daemon.endpoint) as client:
                    sessions = [(await client.open_session()).session_id for _ in range(count)]
                    cpu0, walls = daemon.cpu_s(), []
                    for sid in sessions:
                        walls.append((await daemon_turn(client, sid, TEXTS[model]))[1])
                    return daemon.cpu_s() - cpu0, walls

            async def direct_round(kind: str, count: int) -> list[float]:
                model, _, _ = kinds[kind]
                body = fake.request_body(model)
                async with httpx.AsyncClient(timeout=60) as http:
                    await direct_stream(http, fake.base_url + "/chat/completions", body)
                    return [(await direct_stream(http, fake.base_url + "/chat/completions", body))[1]
                            for _ in range(count)]

            def floor_round(server: FloorServer, text: str, count: int) -> tuple[float, list[float]]:
                cpu0 = process_cpu_s(server.pid)
                walls = floor_turns(server.endpoint, count, text)
                return process_cpu_s(server.pid) - cpu0, walls

            def runs(name: str, kind: str) -> bool:
                return kind == "ns" or name != "raw"     # the raw floor reads Content-Length bodies only

            for kind, (_, text, _count) in kinds.items():     # warm-up; captures the daemon's request bodies
                trio.run(daemon_round, kind, 10)
                for name, server in servers.items():
                    if runs(name, kind):
                        floor_round(server, text, 10)
            for _ in range(rounds):
                for kind, (_, text, count) in kinds.items():
                    add(f"direct_{kind}", 0.0, trio.run(direct_round, kind, count))
                    for name, server in servers.items():
                        if runs(name, kind):
                            add(f"{name}_{kind}", *floor_round(server, text, count))
                    add(f"daemon_{kind}", *trio.run(daemon_round, kind, count))
    out: dict = {"n": {k: rounds * c for k, (_, _, c) in kinds.items()}}
    for key, walls in wall.items():
        out[key] = {"cpu_us": cpu[key] * 1e6 / len(walls), "wall_us": statistics.median(walls)}
    return out


def sections(quick: bool = False) -> list[dict]:
    r = run(quick)
    c = {k: r[k]["cpu_us"] for k in r if k != "n"}
    w = {k: r[k]["wall_us"] for k in r if k != "n"}
    rows = []
    for kind, label in (("ns", "non-streaming"), ("200", "200-chunk")):
        rows.append(row(f"floor, seam: CPU per {label} turn", c[f"seam_{kind}"], baseline="(baseline)", ratio=1.0))
        for who in ("httpcore", "raw", "daemon"):
            if f"{who}_{kind}" in c:
                rows.append(row(f"{LABELS[who]}: CPU per {label} turn", c[f"{who}_{kind}"],
                                ratio=c[f"{who}_{kind}"] / c[f"seam_{kind}"], baseline="seam floor CPU"))
    for kind, label in (("ns", "non-streaming"), ("200", "200-chunk")):
        rows.append(row(f"direct httpx: {label}, wall", w[f"direct_{kind}"], baseline="(baseline)", ratio=1.0))
        for who in ("seam", "httpcore", "raw", "daemon"):
            if f"{who}_{kind}" in w:
                rows.append(row(f"{LABELS[who]}: {label}, wall", w[f"{who}_{kind}"],
                                base_median_us=w[f"direct_{kind}"], baseline="direct"))
    added = {k: (w[k] - w["direct_" + k.split("_")[1]]) / 1000 for k in w if not k.startswith("direct")}
    return [{
        "title": "12. The floor: a turn's work in one trio task, no actors",
        "notes": ["floor = decode StartTurn, two SQLite transactions, one POST to the same fake (streamed: SSE split, "
                  "json.loads per chunk, one text.delta per network read), the envelopes out (TurnAccepted, "
                  "turn.started, text.delta…, turn.completed); its own process, one trio task; HTTP through the "
                  "daemon's own provider connections (seam), through httpcore, or raw (one write, reads to "
                  "Content-Length: not a usable client, a lower bound); CPU from /proc for the whole process; "
                  f"n={r['n']['ns']} non-streaming and {r['n']['200']} 200-chunk turns each, interleaved rounds",
                  f"added over direct at p50, non-streaming: seam floor {added['seam_ns']:+.2f} ms, httpcore floor "
                  f"{added['httpcore_ns']:+.2f} ms, raw floor {added['raw_ns']:+.2f} ms, daemon "
                  f"{added['daemon_ns']:+.2f} ms; 200 chunks: seam floor {added['seam_200']:+.2f} ms, daemon "
                  f"{added['daemon_200']:+.2f} ms",
                  f"daemon − seam floor CPU: {(c['daemon_ns'] - c['seam_ns']) / 1000:.2f} ms (non-streaming), "
                  f"{(c['daemon_200'] - c['seam_200']) / 1000:.2f} ms (200 chunks): what the actors, routing, "
                  "supervision, the owner tasks and the store's real schema add to the turn's own work"],
        "rows": rows,
        "targets": [],   # the targets are scored in sections 3 and 4; this one explains them
    }]


FLOORS = ("seam", "httpcore", "raw")   # the HTTP client each floor server uses
LABELS = {"seam": "floor, seam", "httpcore": "floor, httpcore", "raw": "floor, raw HTTP", "daemon": "daemon"}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        import trio

        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        endpoint, base_url, db_path, http_kind = sys.argv[2:6]
        trio.run(_serve, endpoint, base_url, db_path, http_kind)
    else:
        from bench._common import print_section

        for section in sections("--quick" in sys.argv):
            print_section(section)
