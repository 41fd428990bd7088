import json
import os
import sys

import pytest
import trio

from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from tests.fakes import open_fake_anthropic, open_fake_openai
from tests.roles.conftest import models_text

PY = sys.executable
KEYS = {"FAKE_ANTHROPIC_KEY": "k-a", "FAKE_OPENAI_KEY": "k-o"}
ROUTING = """schema_version: 1
global_default: anthropic:claude-sonnet-4-6
tiers: {fast: "openai:gpt-5.4-mini", balanced: "anthropic:claude-sonnet-4-6", deep: "anthropic:claude-opus-4-8"}
"""


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode()
        self.stderr = proc.stderr.decode()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines()]


async def cli(paths: Paths, *args: str) -> Result:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(paths.home), "ORCHESTRATOR_STATE": str(paths.state),
           "ORCHESTRATOR_ENDPOINT": paths.endpoint}
    return Result(await trio.run_process([PY, "-m", "orchestrator", *args], env=env, capture_stdout=True,
                                         capture_stderr=True, check=False))


def write_home(short_tmp, anth_url: str, oai_url: str, workflows: str | None = None) -> Paths:
    home = short_tmp / "home"
    home.mkdir(exist_ok=True)
    (home / "models.yaml").write_text(models_text(anth_url, oai_url))
    (home / "routing.yaml").write_text(ROUTING)
    if workflows is not None:
        (home / "workflows.yaml").write_text(workflows)
    return Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock")


@pytest.fixture
async def fakes():
    async with open_fake_anthropic(api_key="k-a") as anth, open_fake_openai(api_key="k-o") as oai:
        yield anth, oai


async def start(nursery, paths: Paths, **settings) -> Daemon:
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001, **settings), env=KEYS)
    await nursery.start(daemon.run)
    return daemon
