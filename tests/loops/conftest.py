"""A daemon whose only model is a scripted fake OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.client import open_client
from tests import stack
from tests.fakes import open_fake_openai


def write_home(root: Path, base_url: str) -> Path:
    return stack.write_home(root, stack.one_model_yaml(base_url, aliases=("llama",), input_per_mtok=1000,
                                                       output_per_mtok=2000), "local:llama")


@pytest.fixture
async def fake(nursery):
    async with open_fake_openai(api_key=None) as oai:
        yield oai


@pytest.fixture
async def loop_stack(request, nursery, short_tmp, fake):
    """(daemon, client, fake); ``indirect`` parametrization with True runs it in wire mode."""
    daemon, paths = await stack.start_daemon(nursery, short_tmp, write_home(short_tmp, fake.base_url),
                                             wire_mode=getattr(request, "param", False))
    async with open_client(paths.endpoint) as client:
        yield daemon, client, fake
    daemon.request_stop("test over")
