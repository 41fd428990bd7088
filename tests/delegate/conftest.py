"""A daemon whose session model is a scripted fake OpenAI server, a fake command-line coding agent
(a script this file writes, run as the ``cli`` model's command), and a temporary git repository
with the user's own uncommitted edits in it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import pytest
import trio

from orchestrator.client import TurnHandle, open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from tests.fakes import Answer, ToolCall, open_fake_openai

AGENT = r'''
import json, os, subprocess, sys
control = sys.argv[1]
prompt = sys.stdin.read()
mode = open(os.path.join(control, "mode")).read().strip()
with open(os.path.join(control, "runs"), "a") as f:
    f.write(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[2:], "mode": mode,
                        "asked_for_files": "FILES_CHANGED=" in prompt}) + "\n")

def edit(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        f.write(text)

if mode == "slow":
    edit("src/app.py", "half-done\n")
    edit("src/pkg/partial.py", "x = 1\n")
    open(os.path.join(control, "started"), "w").write("yes")
    import time
    time.sleep(60)
if mode == "crash":
    edit("src/app.py", "half-done\n")
    edit("src/pkg/partial.py", "x = 1\n")
    print("oops", file=sys.stderr)
    sys.exit(3)
if mode == "ok":
    edit("src/app.py", "# feature\n")
    edit("src/pkg/new.py", "NEW = 1\n")
    print("implemented the feature")
    print("FILES_CHANGED=src/app.py,src/pkg/new.py")
if mode == "lie":
    edit("src/app.py", "# feature\n")
    edit("src/pkg/new.py", "NEW = 1\n")
    print("FILES_CHANGED=src/app.py,src/other.py")
if mode == "commit":
    edit("src/app.py", "# feature\n")
    subprocess.run(["git", "commit", "-qam", "the agent commits"], check=True)
    print("FILES_CHANGED=src/app.py")
if mode == "delete":
    os.remove("src/app.py")
    os.remove("notes.txt")
    print("FILES_CHANGED=src/app.py,notes.txt")
if mode == "outside":
    edit("notes.txt", "the agent's line\n")
    edit("scratch.txt", "the agent's line\n")
    edit("src/app.py", "# feature\n")
    print("FILES_CHANGED=notes.txt,scratch.txt,src/app.py")
if mode == "stash":
    edit("src/app.py", "# feature\n")
    subprocess.run(["git", "stash", "-q"], check=True)
    edit("src/app.py", "# feature\n")
    print("FILES_CHANGED=src/app.py")
if mode == "absolute":
    edit("src/app.py", "# feature\n")
    print("Changed files:")
    print("`FILES_CHANGED=" + os.path.join(os.getcwd(), "src/app.py") + "`")
if mode == "background":
    edit("src/app.py", "# feature\n")
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])   # a dev server, say
    print("FILES_CHANGED=src/app.py")
if mode == "rmtree":
    import shutil
    shutil.rmtree("src")
    print("FILES_CHANGED=src/app.py")
if mode == "exclusive":
    import time
    try:
        fd = os.open(os.path.join(control, "busy"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        open(os.path.join(control, "overlap"), "w").write("two agents at once in one workspace")
        sys.exit(0)
    time.sleep(1)
    os.close(fd)
    os.remove(os.path.join(control, "busy"))
    edit("src/app.py", "# feature\n")
    print("FILES_CHANGED=src/app.py")
if mode == "break":
    edit("src/app.py", "BROKEN\n")
    edit("src/pkg/new.py", "NEW = 1\n")
    print("FILES_CHANGED=src/app.py,src/pkg/new.py")
'''

WORKSPACE_YAML = """\
delegate:
  agent: "agent:coder"
  effort: medium
  test_command: "! grep -rq BROKEN src"
  allow: ["src/**"]
{extra}"""

MODELS = """\
providers:
  loc: {{kind: openai_compatible, base_url: "{base}", api_key_env: null}}
  agent: {{kind: cli}}
models:
  "loc:planner":
    tier: balanced
    family: planner-family
  "loc:reviewer":
    tier: deep
    family: reviewer-family
  "agent:coder":
    tier: fast
    family: coder-family
    efforts: [low, medium, high]
    command: ["{python}", "{agent}", "{control}", "--effort={{effort}}"]
    timeout_s: 30
"""

USER_APP = "print('app')\n# the user's own work in progress\n"


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, text=True).stdout


@attrs.define
class Delegation:
    """One turn whose session model called delegate_code: its session and events."""

    session_id: str
    events: list

    @property
    def result(self) -> ev.ToolReturned:
        return tool_result(self.events)

    @property
    def data(self) -> dict:
        """The delegate_code tool's result (JSON)."""
        return json.loads(self.result.content)


@attrs.define
class Stack:
    root: Path
    ws: Path
    control: Path
    fake: object
    env: dict
    paths: Paths
    nursery: object
    daemon: Daemon | None = None
    stopped: trio.Event = attrs.field(factory=trio.Event)
    consented: bool = False   # `delegate consent --yes` succeeded (``delegate`` consents once otherwise)

    def mode(self, mode: str) -> None:
        (self.control / "mode").write_text(mode)

    def runs(self) -> list[dict]:
        f = self.control / "runs"
        return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []

    def consent(self, *extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "orchestrator", "delegate", "consent", "--workspace",
                               str(self.ws), *extra], env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        self.consented = self.consented or ("--yes" in extra and done.returncode == 0)
        return done

    async def delegate(self, mode: str | None = None, session_id: str | None = None, *,
                       call: Answer | None = None, then: tuple[Answer, ...] = (Answer(text=("ok",)),)) -> Delegation:
        """Consent (once, ``--yes``: after any edit of workspace.yaml or models.yaml the test made), the
        agent in ``mode``, and one turn whose session model calls delegate_code (``call``), then answers ``then``."""
        if not self.consented:
            done = self.consent("--yes")
            assert done.returncode == 0, done.stderr
        if mode is not None:
            self.mode(mode)
        session_id, events = await self.turn(session_id, call or delegate_call(), *then)
        return Delegation(session_id, events)

    async def rolled_back(self, mode: str | None = None, **kw) -> dict:
        """``delegate``, which must not be accepted and must leave the workspace's files and git status
        as they were; its result."""
        before, status = self.tree(), git(self.ws, "status", "--porcelain")
        data = (await self.delegate(mode, **kw)).data
        assert not data["accepted"], data
        assert self.tree() == before
        assert git(self.ws, "status", "--porcelain") == status
        return data

    async def while_the_agent_works(self, act: Callable[[TurnHandle], Awaitable[None]]) -> TurnHandle:
        """A delegating turn with the agent in mode "slow": ``act(turn)`` once it has started writing."""
        if not self.consented:
            assert self.consent("--yes").returncode == 0
        self.mode("slow")
        self.fake.script(delegate_call())
        assert self.daemon is not None
        async with open_client(self.daemon.paths.endpoint) as client:
            info = await client.open_session(workspace=str(self.ws))
            async with client.turn(info.session_id, "implement T1") as turn:
                async for e in turn:
                    if isinstance(e, ev.ToolCalled):
                        with trio.fail_after(20):
                            while not (self.control / "started").exists():
                                await trio.sleep(0.02)
                        await act(turn)
        return turn

    def cli(self, *args: str, workspace: bool = True) -> subprocess.CompletedProcess:
        where = ("--workspace", str(self.ws)) if workspace else ()
        return subprocess.run([sys.executable, "-m", "orchestrator", "delegate", *args, *where], env=self.env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)

    async def start(self) -> None:
        self.daemon = Daemon(self.paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001))
        self.stopped = trio.Event()
        await self.nursery.start(self._run, self.daemon, self.stopped)

    @staticmethod
    async def _run(daemon: Daemon, stopped: trio.Event, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            await daemon.run(task_status=task_status)
        finally:
            stopped.set()

    async def restart(self) -> None:
        """Stop the daemon, wait until it is gone, start a new one on the same state."""
        self.stop()
        await self.stopped.wait()
        await self.start()

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.request_stop("test over")
            self.daemon = None

    async def turn(self, session_id: str | None, *answers, text: str = "implement T1") -> tuple[str, list]:
        self.fake.script(*answers)
        assert self.daemon is not None
        async with open_client(self.daemon.paths.endpoint) as client:
            if session_id is None:
                session_id = (await client.open_session(workspace=str(self.ws))).session_id
            events = []
            async with client.turn(session_id, text) as turn:
                async for e in turn:
                    events.append(e)
        return session_id, events

    def tree(self) -> dict[str, str]:
        """Every file of the workspace (but .git) with its content."""
        out = {}
        for p in sorted(self.ws.rglob("*")):
            rel = p.relative_to(self.ws).as_posix()
            if p.is_file() and not rel.startswith(".git/"):
                out[rel] = p.read_text()
        return out


def delegate_call(task_id: str = "T1", id_: str = "d1", **extra) -> Answer:
    return Answer(text=(), tool_calls=(ToolCall("delegate_code", {"task_id": task_id, "task": "add the feature",
                                                                 **extra}, id=id_),))


def tool_result(events: list, name: str = "delegate_code") -> ev.ToolReturned:
    found = [e for e in events if isinstance(e, ev.ToolReturned) and e.name == name]
    assert found, [type(e).__name__ for e in events]
    return found[-1]


@pytest.fixture
async def stack(nursery, short_tmp):
    async with open_fake_openai(api_key=None) as fake:
        root = short_tmp
        ws, control, home = root / "ws", root / "control", root / "home"
        for d in (ws, control, home):
            d.mkdir()
        agent = root / "agent.py"
        agent.write_text(AGENT)
        (home / "models.yaml").write_text(MODELS.format(base=fake.base_url, python=sys.executable, agent=agent,
                                                        control=control))
        (home / "routing.yaml").write_text("schema_version: 1\nglobal_default: loc:planner\n")
        git(ws, "init", "-q", "-b", "main")
        git(ws, "config", "user.email", "t@example.invalid")
        git(ws, "config", "user.name", "test")
        (ws / "src").mkdir()
        (ws / "src" / "app.py").write_text("print('app')\n")
        (ws / "notes.txt").write_text("notes\n")
        (ws / ".gitignore").write_text(".orchestrator/\n")
        git(ws, "add", "-A")
        git(ws, "commit", "-qm", "initial")
        # The user's own uncommitted work: a dirty file inside allow, one outside, an untracked one.
        (ws / "src" / "app.py").write_text(USER_APP)
        (ws / "notes.txt").write_text("notes\nthe user's edit\n")
        (ws / "scratch.txt").write_text("untracked, the user's\n")
        (ws / ".orchestrator").mkdir()
        (ws / ".orchestrator" / "workspace.yaml").write_text(WORKSPACE_YAML.format(extra=""))
        env = {**os.environ, "ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_STATE": str(root / "state"),
               "ORCHESTRATOR_ENDPOINT": f"ipc://{root}/d.sock"}
        paths = Paths(home, root / "state", f"ipc://{root}/d.sock")
        s = Stack(root, ws, control, fake, env, paths, nursery)
        s.mode("ok")
        await s.start()
        try:
            yield s
        finally:
            s.stop()
