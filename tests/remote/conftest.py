"""Key pairs, a hub on a loopback port, and workers (in-process or as `orchestrator worker` processes)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import attrs
import pytest
import trio

from actors.remote.config import WorkersConfig
from actors.remote.keys import KeyPair, generate_key_pair, write_key_file
from orchestrator.client import Client, TurnHandle, open_client
from protocol import events as ev
from tests.e2e.conftest import run_turn
from tests.fakes import Answer, FakeOpenAI, ToolCall, open_fake_openai

REPO = Path(__file__).resolve().parents[2]
# A workspace whose tools run on pool "build"; WORKER_MARK shows whose environment a command saw.
WORKSPACE_YAML = "tools: {run_command: true}\nworker_pool: build\npass_env: [WORKER_MARK]\n"
# A remote command that runs until it is stopped, and says its pid (in the workspace's file "pid").
LONG_COMMAND = ToolCall("run_command", {"command": "echo $$ > pid; exec sleep 60"})
# Whose environment and which parent process a remote command had.
WHERE_AM_I = ToolCall("run_command", {"command": "echo mark=$WORKER_MARK ppid=$PPID"})


@pytest.fixture
async def fake():
    async with open_fake_openai(api_key=None) as f:
        yield f


@pytest.fixture
def workspace(short_tmp) -> Path:
    ws = short_tmp / "ws"
    (ws / ".orchestrator").mkdir(parents=True)
    (ws / ".orchestrator" / "workspace.yaml").write_text(WORKSPACE_YAML)
    return ws


def key_file(path: Path) -> tuple[Path, KeyPair]:
    """A new key pair, written to ``path`` (0600) as ``keys generate`` would."""
    pair = generate_key_pair()
    write_key_file(path, pair)
    return path, pair


@pytest.fixture
def server_pair(short_tmp) -> tuple[Path, KeyPair]:
    return key_file(short_tmp / "server.key")


@pytest.fixture
def worker_pair(short_tmp) -> tuple[Path, KeyPair]:
    return key_file(short_tmp / "worker.key")


def workers_config(server_file: Path, *allowed: bytes, heartbeat_s: float = 0.5,
                   pools: tuple[str, ...] = ("default", "build")) -> WorkersConfig:
    return WorkersConfig("tcp://127.0.0.1:*", tuple(k.decode() for k in allowed), str(server_file),
                         heartbeat_s, pools)


class WorkerProcess:
    """``orchestrator worker`` as a child process in its own cwd, with a marker in its environment."""

    def __init__(self, proc: subprocess.Popen, cwd: Path):
        self.proc = proc
        self.cwd = cwd

    @property
    def pid(self) -> int:
        return self.proc.pid


def spawn(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def worker_argv(endpoint: str, key_file: Path, server_public: bytes, *, pool: str = "build",
                hello_timeout: str = "20", prefix: Sequence[str] = ()) -> list[str]:
    """``orchestrator worker``'s command line (``prefix``: e.g. ``ip netns exec NS``)."""
    return [*prefix, sys.executable, "-m", "orchestrator", "worker", "--connect", endpoint, "--key", str(key_file),
            f"--server-key={server_public.decode()}", "--pool", pool, "--hello-timeout", hello_timeout]


async def start_worker_process(endpoint: str, key_file: Path, server_public: bytes, cwd: Path, *,
                               pool: str = "build", mark: str = "on-the-worker",
                               prefix: Sequence[str] = ()) -> WorkerProcess:
    """Start a worker and wait (at most 60 s) for its "connected" line (the daemon welcomed it)."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WORKER_MARK": mark, "PYTHONPATH": str(REPO), "ORCHESTRATOR_STATE": str(cwd / "state")}
    proc = spawn(worker_argv(endpoint, key_file, server_public, pool=pool, prefix=prefix), cwd, env)
    assert proc.stdout is not None
    line = "-"
    with trio.move_on_after(60):
        while line and "connected" not in line:   # log lines may come first
            line = await trio.to_thread.run_sync(proc.stdout.readline, abandon_on_cancel=True)
    if "connected" not in line:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"worker did not connect to {endpoint}: {line!r} {err[-2000:]!r}")
    return WorkerProcess(proc, cwd)


async def wait_for_pid(path: Path) -> int:
    """The first pid a remote command wrote to ``path``."""
    with trio.fail_after(60):   # a bound, not a timing assert: the command writes it at once
        while not path.exists() or not path.read_text().strip():
            await trio.sleep(0.02)
    return int(path.read_text().split()[0])


@attrs.define
class LongCall:
    """A turn whose remote command (LONG_COMMAND) was acted on while it ran."""

    session_id: str
    events: list
    pid: int | None               # the remote command's process
    left_running: bool            # it outlived the turn (``kill -9`` of its worker leaves it): killed here


async def turn_with_long_remote_command(
        endpoint: str, workspace: Path, text: str, act: Callable[[Client, TurnHandle, int], Awaitable[None]], *,
        when: type = ev.ToolCalled) -> LongCall:
    """A turn in ``workspace``; at its first ``when`` event, once the remote command wrote its pid,
    ``act(client, turn, pid)`` (kill the worker, cancel the turn, ask for status…)."""
    events: list = []
    pid: int | None = None
    sid = ""
    try:
        with trio.fail_after(120):   # the heartbeat timeout is 1.5 s; this only bounds a hang
            async with open_client(endpoint) as client:
                sid = (await client.open_session(workspace=str(workspace))).session_id
                async with client.turn(sid, text) as turn:
                    async for e in turn:
                        events.append(e)
                        if isinstance(e, when) and pid is None:
                            pid = await wait_for_pid(workspace / "pid")
                            await act(client, turn, pid)
    finally:
        left_running = pid is not None and process_alive(pid)
        if left_running:
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
    return LongCall(sid, events, pid, left_running)


def stop_worker_process(worker: WorkerProcess) -> None:
    if worker.proc.poll() is None:
        worker.proc.terminate()
        try:
            worker.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()
    for stream in (worker.proc.stdout, worker.proc.stderr):
        if stream is not None:
            stream.close()


def process_alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes in a container is not running)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def check_a_turns_tool_runs_on(endpoint: str, fake: FakeOpenAI, workspace: Path, worker: WorkerProcess,
                                     mark: str) -> None:
    """A workspace turn whose tool (WHERE_AM_I) ran in ``worker``: its environment, its pid as the parent."""
    fake.script(Answer(text=(), tool_calls=(WHERE_AM_I,)), Answer(text=("done",)))
    with trio.fail_after(120):   # bounds a hang only
        async with open_client(endpoint) as client:
            info = await client.open_session(workspace=str(workspace))
            _, events = await run_turn(client, info.session_id, "where do tools run?")
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]
    returned = [e for e in events if isinstance(e, ev.ToolReturned)]
    assert len(returned) == 1 and not returned[0].is_error, returned
    assert "WORKER_MARK" not in os.environ   # neither the test nor the daemon has it
    assert f"mark={mark} ppid={worker.pid}" in returned[0].content
