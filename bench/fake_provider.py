"""A zero-latency OpenAI-compatible provider in its own process, for the turn benchmarks.

    python bench/fake_provider.py [--dump DIR]

Serves ``tests.fakes.FakeOpenAI`` (the strict fake of the test suite: real HTTP/1.1 on 127.0.0.1,
chunked SSE) with one twist: the answer is chosen by the requested model name. ``cN`` streams N
content chunks; anything else streams 8. Rendered answers are cached per model, so the fake does
the same, minimal work for every request whoever sends it. With ``--dump``, the first request body
per model is written to ``DIR/<model>.json`` so the direct baseline can send exactly the request
the daemon sent; model ``c7`` (the session-reuse benchmark's) has its *latest* body written, every
time. Prints ``ready <base_url>``; exits when stdin reaches EOF.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes import Answer, open_fake_openai  # noqa: E402
from tests.fakes.http import Plan  # noqa: E402

CHUNK = " tok"  # one short token per chunk, like a real model's stream
DUMP_EVERY = "c7"  # its history grows turn by turn: the baseline needs the body of *this* turn


def chunk_count(model: str) -> int:
    if model.startswith("c") and model[1:].isdigit():
        return int(model[1:])
    return 8


async def main(dump: Path | None) -> None:
    async with open_fake_openai(api_key=None) as srv:
        cache: dict[tuple[str, bool], Plan] = {}
        render = srv.render

        def cached_render(answer: Answer, body: dict) -> Plan:
            model = body["model"]
            key = (model, bool((body.get("stream_options") or {}).get("include_usage")))
            plan = cache.get(key)
            if plan is None:
                n = chunk_count(model)
                plan = cache[key] = render(Answer(text=(CHUNK,) * n), body)
                if dump is not None:
                    (dump / f"{model}.json").write_text(json.dumps(body))
            elif model == DUMP_EVERY and dump is not None:
                (dump / f"{model}.json").write_text(json.dumps(body))
            srv.requests.clear()  # the fake records every request; keep its memory flat
            return plan

        srv.render = cached_render
        srv.default = Answer()  # any non-None reply: the render above picks the real one
        print("ready", srv.base_url, flush=True)
        await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    dump_dir = Path(args[args.index("--dump") + 1]) if "--dump" in args else None
    trio.run(main, dump_dir)
