"""A real daemon with the HTTP gateway on 127.0.0.1, in front of the fake OpenAI and Anthropic servers.

The official ``openai`` and ``anthropic`` SDKs are the clients (``max_retries=0``: an error is seen at
once, never retried with a backoff). Their synchronous clients run in a worker thread (``Gateway.call``):
the SDKs' async streams leave async generators unclosed, which trio reports as resource warnings."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import TypeVar

import anthropic
import openai
import pytest
import trio

from orchestrator.daemon import Daemon
from orchestrator.gateway.config import HttpSettings
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from tests.fakes import open_fake_anthropic, open_fake_openai

T = TypeVar("T")

MODELS = """
providers:
  local: {{kind: openai_compatible, base_url: "{openai}", api_key_env: null}}
  anthropic: {{kind: anthropic, base_url: "{anthropic}", api_key_env: FAKE_ANTHROPIC_KEY}}
  broken: {{kind: anthropic, base_url: "{anthropic}", api_key_env: GW_UNSET_KEY}}
models:
  "local:llama":
    tier: balanced
    aliases: [llama]
    capabilities: {{max_context_tokens: 32000, supports_structured_output: true}}
    pricing: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}
  "anthropic:claude-haiku-4-5":
    tier: fast
    aliases: [haiku]
    capabilities: {{max_context_tokens: 200000, supports_images: true}}
    pricing: {{input_per_mtok: 1.0, output_per_mtok: 5.0}}
  "broken:claude-opus":
    tier: deep
    aliases: [opus]
"""


def write_home(root: Path, oai, anth, *, default: str = "local:llama") -> Path:
    home = root / "home"
    home.mkdir(exist_ok=True)
    (home / "models.yaml").write_text(MODELS.format(openai=oai.base_url, anthropic=anth.base_url))
    (home / "routing.yaml").write_text(f"schema_version: 1\nglobal_default: {default}\n")
    return home


class Gateway:
    """The running stack: daemon, its gateway URL, the fakes, SDK clients pointed at it."""

    def __init__(self, daemon: Daemon, oai, anth):
        self.daemon, self.oai, self.anth = daemon, oai, anth
        assert daemon.http_url is not None
        self.url = daemon.http_url
        self.clients: list[openai.OpenAI | anthropic.Anthropic] = []

    def openai(self, **kw) -> openai.OpenAI:
        kw.setdefault("api_key", "unused")
        client = openai.OpenAI(base_url=f"{self.url}/v1", max_retries=0, **kw)
        self.clients.append(client)
        return client

    def anthropic(self, **kw) -> anthropic.Anthropic:
        kw.setdefault("api_key", "unused")
        client = anthropic.Anthropic(base_url=self.url, max_retries=0, **kw)
        self.clients.append(client)
        return client

    async def call(self, fn: Callable[[], T]) -> T:
        """Run a blocking SDK call in a worker thread while the daemon serves it here."""
        return await trio.to_thread.run_sync(fn)

    async def aclose(self) -> None:
        for client in self.clients:
            client.close()
        self.daemon.request_stop("test over")


async def start_gateway(nursery, root: Path, oai, anth, *, http: HttpSettings | None = None,
                        wire_mode: bool = False, env: dict | None = None, default: str = "local:llama") -> Gateway:
    home = write_home(root, oai, anth, default=default)
    paths = Paths(home, root / "state", f"ipc://{root}/d.sock")
    settings = DaemonSettings(shutdown_grace_s=1.0, retry_max_attempts=1, retry_base_delay_s=0.001,
                              http=http or HttpSettings("127.0.0.1", 0))
    daemon = Daemon(paths, settings, wire_mode=wire_mode, env=env)
    await nursery.start(daemon.run)
    return Gateway(daemon, oai, anth)


@pytest.fixture
async def fakes(nursery):
    async with open_fake_openai(api_key=None) as oai, open_fake_anthropic(api_key="k-test") as anth:
        yield oai, anth


@pytest.fixture
async def gateway(nursery, short_tmp, fakes, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k-test")
    monkeypatch.delenv("GW_UNSET_KEY", raising=False)
    gw = await start_gateway(nursery, short_tmp, *fakes)
    yield gw
    await gw.aclose()
