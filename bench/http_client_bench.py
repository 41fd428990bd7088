"""Provider HTTP layer alone: client CPU per request for one JSON POST and one 200-chunk SSE stream.

    python bench/http_client_bench.py [--quick]

The fake provider (``bench/fake_provider.py``, zero latency) runs in its own process; this process
is the client, so ``time.process_time`` over a batch of requests is the client's own CPU (the
fake's work is not counted). Variants, in interleaved rounds over the same fake:

* ``httpx + lines`` — what the adapters did up to session 6: ``httpx.AsyncClient.stream``,
  ``aiter_lines`` and a per-line SSE decoder, one generator hop per event.
* ``httpx + reads`` — the same client, the body read per network read (``aiter_raw``) and split by
  ``actors.providers._sse.SSEDecoder`` (isolates the parsing change from the client change).
* ``httpcore + reads`` — httpx's own transport (``httpcore.AsyncConnectionPool``, trio backend)
  called directly, with the per-read decoder.
* ``seam`` — ``actors.providers._http.HTTPAdapter.post_events`` as the adapters call it (since
  the prov work: its own keep-alive connections, httptools' parser; the failure mapping, the
  concurrency cap), each payload decoded with ``load_json`` (orjson) as the adapters do.
* ``floor: h11 + json`` (streams only) — no I/O at all: h11 parsing a recorded 200-chunk response
  and ``json.loads`` of each payload. What any h11-based client pays per stream at least.
* ``floor: httptools + orjson`` (streams only) — the same recorded response through httptools'
  parser and orjson: the parsing floor of the seam as it is now.

Each stream variant JSON-decodes every ``data:`` payload, the least any client must do.
Not part of ``python -m bench`` (it measures a library choice, not the daemon); its figures are in
docs/benchmarks.md, "Provider HTTP layer (session 6)".
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from contextlib import aclosing
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h11  # noqa: E402
import httpcore  # noqa: E402
import httptools  # noqa: E402
import httpx  # noqa: E402
import trio  # noqa: E402

from actors.providers._http import HTTPAdapter, JSONBody, load_json  # noqa: E402
from actors.providers._sse import SSEDecoder  # noqa: E402
from bench._common import FakeProvider, short_tmpdir  # noqa: E402

STREAM_CHUNKS = 200
MESSAGES = [{"role": "user", "content": "Describe the actor kernel in one paragraph."}]
STREAM_BODY = {"model": f"c{STREAM_CHUNKS}", "messages": MESSAGES, "max_tokens": 4096, "stream": True,
               "stream_options": {"include_usage": True}}
JSON_BODY = {"model": "c9", "messages": MESSAGES, "max_tokens": 4096}
HEADERS = {"accept": "text/event-stream", "content-type": "application/json"}


class LineDecoder:
    """The per-line SSE decoder the adapters used before session 6 (kept here as the baseline)."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str | None, str] | None:
        if not line:
            event = (self._event, "\n".join(self._data)) if self._data else None
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None


def _count(data: str) -> int:
    if data == "[DONE]":
        return 0
    return sum(1 for c in json.loads(data).get("choices") or () if (c.get("delta") or {}).get("content"))


async def _events_by_line(http: httpx.AsyncClient, url: str):
    decoder = LineDecoder()
    async with http.stream("POST", url, json=STREAM_BODY, headers=HEADERS) as resp:
        async for line in resp.aiter_lines():
            event = decoder.feed(line)
            if event is not None:
                yield event   # one generator hop per event, as the old post_events did


async def httpx_lines_stream(http: httpx.AsyncClient, url: str) -> int:
    n = 0
    async with aclosing(_events_by_line(http, url)) as events:
        async for _, data in events:
            n += _count(data)
    return n


async def httpx_reads_stream(http: httpx.AsyncClient, url: str) -> int:
    n = 0
    decoder = SSEDecoder()
    async with http.stream("POST", url, json=STREAM_BODY, headers=HEADERS) as resp:
        async for raw in resp.aiter_raw():
            for _, data in decoder.feed(raw):
                n += _count(data)
    return n


async def httpcore_reads_stream(pool: httpcore.AsyncConnectionPool, url: str) -> int:
    n = 0
    decoder = SSEDecoder()
    body = json.dumps(STREAM_BODY).encode()
    async with pool.stream("POST", url, headers=list(HEADERS.items()), content=body) as resp:
        async for raw in resp.aiter_stream():
            for _, data in decoder.feed(raw):
                n += _count(data)
    return n


def _count_fast(data: str) -> int:
    if data == "[DONE]":
        return 0
    return sum(1 for c in load_json(data).get("choices") or () if (c.get("delta") or {}).get("content"))


async def seam_stream(adapter: HTTPAdapter, path: str) -> int:
    n = 0
    async with aclosing(adapter.post_events(path, {"accept": "text/event-stream"}, STREAM_BODY)) as batches:
        async for batch in batches:
            assert not isinstance(batch, JSONBody)
            for _, data in batch:
                n += _count_fast(data)
    return n


class _Sink:
    def __init__(self) -> None:
        self.body: list[bytes] = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)


async def floor_httptools_orjson(reads: list[bytes]) -> int:
    sink = _Sink()
    parser = httptools.HttpResponseParser(sink)
    n = 0
    for read in reads:
        parser.feed_data(read)
        for body in sink.body:
            data = bytes(body)[6:-2].decode()
            n += _count_fast(data)
        sink.body.clear()
    return n


def recorded_reads(chunks: int) -> list[bytes]:
    """A chunked 200 response in the fake provider's shape, one HTTP chunk per SSE event, as reads."""
    payload = {"id": "chatcmpl-0", "object": "chat.completion.chunk", "created": 0, "model": "c",
               "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}]}
    events = [f"data: {json.dumps(payload)}\n\n".encode()] * chunks + [b"data: [DONE]\n\n"]
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return [head] + [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]


def recorded_stream(chunks: int) -> bytes:
    return b"".join(recorded_reads(chunks))


async def floor_h11_json(response: bytes) -> int:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/", headers=[("host", "fake"), ("content-length", "0")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(response)
    n = 0
    while True:
        event = conn.next_event()
        if type(event) is h11.Data:
            data = bytes(event.data)[6:-2].decode()
            n += _count(data)
        elif type(event) is h11.EndOfMessage:
            return n


async def httpx_json(http: httpx.AsyncClient, url: str) -> int:
    resp = await http.post(url, json=JSON_BODY)
    return len(resp.json()["choices"])


async def httpcore_json(pool: httpcore.AsyncConnectionPool, url: str) -> int:
    resp = await pool.request("POST", url, headers=[("content-type", "application/json")],
                              content=json.dumps(JSON_BODY).encode())
    return len(json.loads(resp.content)["choices"])


async def seam_json(adapter: HTTPAdapter, path: str) -> int:
    async with aclosing(adapter.post_events(path, {"accept": "application/json"}, JSON_BODY)) as items:
        async for item in items:
            assert isinstance(item, JSONBody)
            return len(item.value["choices"])
    return 0


async def _measure(base_url: str, quick: bool) -> dict[str, dict[str, float]]:
    url = base_url + "/chat/completions"
    rounds, per_round = (4, 20) if quick else (10, 40)
    results: dict[str, dict[str, list[float]]] = {}
    recorded = recorded_stream(STREAM_CHUNKS)
    reads = recorded_reads(STREAM_CHUNKS)
    async with httpx.AsyncClient(timeout=60) as http, httpcore.AsyncConnectionPool() as pool:
        adapter = HTTPAdapter(base_url=base_url)
        try:
            kinds: dict[str, dict[str, tuple[Callable[[], Awaitable[int]], int]]] = {
                "json": {
                    "httpx": (lambda: httpx_json(http, url), 1),
                    "httpcore": (lambda: httpcore_json(pool, url), 1),
                    "seam": (lambda: seam_json(adapter, "/chat/completions"), 1),
                },
                f"stream{STREAM_CHUNKS}": {
                    "httpx + lines": (lambda: httpx_lines_stream(http, url), STREAM_CHUNKS),
                    "httpx + reads": (lambda: httpx_reads_stream(http, url), STREAM_CHUNKS),
                    "httpcore + reads": (lambda: httpcore_reads_stream(pool, url), STREAM_CHUNKS),
                    "seam": (lambda: seam_stream(adapter, "/chat/completions"), STREAM_CHUNKS),
                    "floor: h11 + json": (lambda: floor_h11_json(recorded), STREAM_CHUNKS),
                    "floor: httptools + orjson": (lambda: floor_httptools_orjson(reads), STREAM_CHUNKS),
                },
            }
            for kind, variants in kinds.items():
                for name, (call, want) in variants.items():   # warm-up: connections, imports
                    for _ in range(3):
                        got = await call()
                        assert got == want, (kind, name, got)
                for _ in range(rounds):
                    for name, (call, _) in variants.items():
                        t0 = time.process_time()
                        for _ in range(per_round):
                            await call()
                        cpu_us = (time.process_time() - t0) * 1e6 / per_round
                        results.setdefault(kind, {}).setdefault(name, []).append(cpu_us)
        finally:
            await adapter.aclose()
    # Median over rounds: a round that another process's burst slowed is discounted.
    return {kind: {name: statistics.median(v) for name, v in variants.items()}
            for kind, variants in results.items()}


def run(quick: bool = False) -> dict[str, dict[str, float]]:
    fake = FakeProvider(short_tmpdir("obench-http-"))
    try:
        return trio.run(_measure, fake.base_url, quick)
    finally:
        fake.close()


if __name__ == "__main__":
    with open("/proc/loadavg") as f:
        print("load", f.read().split()[:3])
    for kind, variants in run("--quick" in sys.argv[1:]).items():
        print(f"\n{kind}: client CPU per request (median of rounds)")
        base = next(iter(variants.values()))
        for name, cpu_us in variants.items():
            print(f"  {name:<27}{cpu_us:9.0f} µs   {cpu_us / base:5.2f}×")
    with open("/proc/loadavg") as f:
        print("\nload", f.read().split()[:3])
