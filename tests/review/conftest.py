"""A daemon on fake OpenAI and Anthropic servers (two families), and the CLI run in a thread
against it (the CLI runs its own trio loop, which cannot nest inside the test's)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio

from orchestrator.cli import main
from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from tests.fakes import open_fake_anthropic, open_fake_openai

MODELS = """\
providers:
  openai: {{kind: openai, base_url: "{openai}", api_key_env: FAKE_OPENAI_KEY}}
  codex: {{kind: cli}}
  anthropic: {{kind: anthropic, base_url: "{anthropic}", api_key_env: FAKE_ANTHROPIC_KEY}}
models:
  "anthropic:claude-sonnet-4-6":
    tier: balanced
    aliases: [sonnet]
    efforts: [low, medium, high]
    capabilities: {{supports_thinking: true}}
  "anthropic:claude-opus-4-8":
    tier: deep
    efforts: [low, medium, high]
  "openai:gpt-5.4":
    tier: balanced
    aliases: [gpt]
    efforts: [minimal, low, medium, high, xhigh]
  "openai:gpt-5.4-mini":
    tier: fast
  "codex:gpt-5.5":
    family: openai
    efforts: [low, high]
    command: ["{python}", "{script}", "--model", "{{model}}", "--config=model_reasoning_effort={{effort}}"]
    timeout_s: 30
"""

# A command-line reviewer: reads the prompt on stdin, answers in the verdict format, and says
# which argv it got (so a test sees the model and the effort reach the command line).
CLI_REVIEWER = """import sys
prompt = sys.stdin.read()
print("FINDINGS:")
print("- low | calc.py:2 | argv " + " ".join(sys.argv[1:]))
print("VERDICT: SHIP" if "+VALUE = 42" in prompt else "VERDICT: MAJOR_RETHINK")
"""


@attrs.define
class Stack:
    client: object
    oai: object
    anth: object
    home: Path
    root: Path
    paths: Paths

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """Run ``orchestrator ARGS`` against this daemon; (exit code, stdout, stderr)."""
        return await trio.to_thread.run_sync(_run_cli, list(args))


_CAPTURE: dict = {}


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    capsys = _CAPTURE["capsys"]
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, _without_daemon_logs(out.out), _without_daemon_logs(out.err)


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _without_daemon_logs(text: str) -> str:
    """The daemon runs in this process: its log lines land in the same captured streams."""
    return "".join(line for line in text.splitlines(keepends=True) if not _LOG_LINE.match(line))


@pytest.fixture
def openai_key() -> str | None:
    """The daemon's FAKE_OPENAI_KEY (parametrize it to None for a not_configured openai)."""
    return "k-oai"


@pytest.fixture(params=[False, True], ids=["local", "wire"])
async def stack(request, nursery, short_tmp, monkeypatch, capsys, openai_key):
    async with open_fake_openai(api_key="k-oai") as oai, open_fake_anthropic(api_key="k-anth") as anth:
        home = short_tmp / "home"
        home.mkdir()
        script = short_tmp / "cli_reviewer.py"
        script.write_text(CLI_REVIEWER)
        (home / "models.yaml").write_text(MODELS.format(openai=oai.base_url, anthropic=anth.base_url,
                                                        python=sys.executable, script=script))
        (home / "routing.yaml").write_text("schema_version: 1\nglobal_default: anthropic:claude-sonnet-4-6\n")
        paths = Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock")
        for name, value in (("FAKE_OPENAI_KEY", openai_key), ("FAKE_ANTHROPIC_KEY", "k-anth"),
                            ("ORCHESTRATOR_HOME", str(home)), ("ORCHESTRATOR_STATE", str(paths.state)),
                            ("ORCHESTRATOR_ENDPOINT", paths.endpoint)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        monkeypatch.delenv("ORCHESTRATOR_REVIEW_BACKEND", raising=False)
        _CAPTURE["capsys"] = capsys
        daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001),
                        wire_mode=request.param)
        await nursery.start(daemon.run)
        async with open_client(paths.endpoint) as client:
            yield Stack(client, oai, anth, home, short_tmp, paths)
        daemon.request_stop("test over")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repo(root: Path) -> Path:
    """A repository with one commit, then a change: one file modified, one new untracked file."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    (repo / "calc.py").write_text("def mean(xs):\n    return sum(xs) / len(xs)\n")
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    (repo / "calc.py").write_text("def mean(xs):\n    return sum(xs) / max(len(xs), 1)\n")
    (repo / "new_module.py").write_text("VALUE = 42\n")
    (repo / "debug.log").write_text("ignored by .gitignore\n")
    return repo
