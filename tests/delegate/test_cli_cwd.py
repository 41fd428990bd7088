"""Where a ``cli`` model's process runs: the request's workspace; without one, where the daemon runs."""
from __future__ import annotations

import os
from contextlib import aclosing

from actors.providers.base import Completed, LLMRequest
from actors.providers.cli import CliAdapter
from protocol.canonical import Message, Role, TextBlock

PWD = ["/bin/sh", "-c", "cat > /dev/null; pwd"]


async def answer(adapter: CliAdapter, workspace: str | None) -> str:
    request = LLMRequest(model="m", messages=(Message(Role.USER, (TextBlock("where?"),)),), workspace=workspace)
    async with aclosing(adapter.stream(request)) as events:
        async for event in events:
            if isinstance(event, Completed):
                return event.message.text.strip()
    raise AssertionError("no Completed")


async def test_a_cli_model_runs_in_the_requests_workspace(tmp_path):
    assert await answer(CliAdapter(PWD, model="m"), str(tmp_path)) == str(tmp_path.resolve())


async def test_a_cli_model_without_a_workspace_runs_where_the_daemon_runs(tmp_path):
    assert await answer(CliAdapter(PWD, model="m"), None) == os.path.realpath(os.getcwd())
