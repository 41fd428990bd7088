"""A daemon whose only model is a scripted fake OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from tests.fakes import open_fake_openai

MODELS = """
providers:
  local: {{kind: openai_compatible, base_url: "{openai}", api_key_env: null}}
models:
  "local:llama":
    tier: balanced
    aliases: [llama]
    capabilities: {{max_context_tokens: 32000}}
    pricing: {{input_per_mtok: 1000, output_per_mtok: 2000}}
"""
ROUTING = "schema_version: 1\nglobal_default: local:llama\n"


def write_home(root: Path, base_url: str) -> Path:
    home = root / "home"
    home.mkdir(exist_ok=True)
    (home / "models.yaml").write_text(MODELS.format(openai=base_url))
    (home / "routing.yaml").write_text(ROUTING)
    return home


@pytest.fixture
async def fake(nursery):
    async with open_fake_openai(api_key=None) as oai:
        yield oai


@pytest.fixture
async def loop_stack(request, nursery, short_tmp, fake):
    """(daemon, client, fake); ``indirect`` parametrization with True runs it in wire mode."""
    home = write_home(short_tmp, fake.base_url)
    paths = Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock")
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001),
                    wire_mode=getattr(request, "param", False))
    await nursery.start(daemon.run)
    async with open_client(paths.endpoint) as client:
        yield daemon, client, fake
    daemon.request_stop("test over")
