"""The side-by-side peer row: the LiteLLM proxy against the same fake provider, in the same run.

    python bench/peer_bench.py [--quick]

Installs nothing: when ``litellm`` is not importable the section says so and is skipped. When it
is, ``litellm``'s proxy (``python -m litellm.proxy.proxy_cli``) runs in its own process with one
model routed to the fake, and this process sends the same 8-chunk streamed request (i) straight
to the fake, (ii) through the proxy and (iii) as a daemon turn, in interleaved rounds.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import trio  # noqa: E402

from bench._common import closing_all, row, short_tmpdir, summary_us  # noqa: E402
from bench.turn_bench import SHORT_MODEL, SHORT_TEXT, daemon_turn, direct_stream, make_stack  # noqa: E402
from orchestrator.client import open_client  # noqa: E402

SKIPPED = "litellm not installed — skipped"


def litellm_available() -> bool:
    return importlib.util.find_spec("litellm") is not None


class LiteLLMProxy:
    def __init__(self, fake_base_url: str):
        self.root = short_tmpdir("obench-litellm-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = self.root / "config.yaml"
        config.write_text(f"model_list:\n  - model_name: {SHORT_MODEL}\n    litellm_params:\n"
                          f"      model: openai/{SHORT_MODEL}\n      api_base: {fake_base_url}\n      api_key: x\n")
        self.log = open(self.root / "proxy.log", "wb")
        # Recent releases refuse to start without a master key (every request would be accepted
        # unauthenticated); a deployment sets one, so the benchmark does too and sends it. The
        # local price map spares a start-up fetch that cannot succeed offline.
        self.master_key = "sk-bench-" + os.urandom(16).hex()
        env = dict(os.environ, LITELLM_MASTER_KEY=self.master_key, LITELLM_LOCAL_MODEL_COST_MAP="True")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "litellm.proxy.proxy_cli", "--config", str(config), "--host", "127.0.0.1",
             "--port", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.base_url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"litellm proxy exited: {(self.root / 'proxy.log').read_text()[-1000:]}")
            try:
                if httpx.get(self.base_url + "/health/liveliness", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("litellm proxy did not start within 90 s")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def _measure(fake, daemon, proxy: LiteLLMProxy, rounds: int, n: int) -> dict:
    res: dict[str, list[float]] = {"direct": [], "litellm": [], "daemon": []}
    auth = {"authorization": f"Bearer {proxy.master_key}"}
    async with (open_client(daemon.endpoint) as client, httpx.AsyncClient(timeout=60) as http,
                httpx.AsyncClient(timeout=60, headers=auth) as via_proxy):
        await daemon_turn(client, (await client.open_session()).session_id, SHORT_TEXT)
        body = fake.request_body(SHORT_MODEL)
        await direct_stream(via_proxy, proxy.base_url + "/chat/completions", body)   # warm-up
        for _ in range(rounds):
            for _ in range(n):
                res["direct"].append((await direct_stream(http, fake.base_url + "/chat/completions", body))[1])
            for _ in range(n):
                res["litellm"].append((await direct_stream(via_proxy, proxy.base_url + "/chat/completions", body))[1])
            for _ in range(n):
                sid = (await client.open_session()).session_id
                res["daemon"].append((await daemon_turn(client, sid, SHORT_TEXT))[1])
    return res


def sections(quick: bool = False) -> list[dict]:
    title = "9. Peer: LiteLLM proxy vs the daemon (8-chunk answer, same fake provider)"
    if not litellm_available():
        return [{"title": title, "notes": [SKIPPED], "rows": [], "targets": [], "raw": {"skipped": True}}]
    fake, daemon = make_stack()
    with closing_all(fake, daemon):
        proxy = LiteLLMProxy(fake.base_url)
        with closing_all(proxy):
            r = trio.run(_measure, fake, daemon, proxy, 3 if quick else 5, 20 if quick else 60)
    s = {k: summary_us(v) for k, v in r.items()}
    base = s["direct"]["median_us"]
    added = {k: s[k]["median_us"] - base for k in ("litellm", "daemon")}
    return [{
        "title": title,
        "notes": [f"added over direct at p50: LiteLLM {added['litellm'] / 1000:+.2f} ms, daemon "
                  f"{added['daemon'] / 1000:+.2f} ms (LiteLLM / daemon added: "
                  f"{added['litellm'] / added['daemon']:.1f}×)" if added["daemon"] > 0 else "daemon added nothing"],
        "rows": [row("direct httpx: total", base, s["direct"]["p99_us"], baseline="(baseline)", ratio=1.0),
                 row("LiteLLM proxy: total", s["litellm"]["median_us"], s["litellm"]["p99_us"],
                     baseline="direct total", base_median_us=base),
                 row("daemon turn: total", s["daemon"]["median_us"], s["daemon"]["p99_us"],
                     baseline="direct total", base_median_us=base)],
        "targets": [], "raw": s,
    }]


if __name__ == "__main__":
    from bench._common import print_section

    for section in sections("--quick" in sys.argv[1:]):
        print_section(section)
