"""The Done-when of issue 19 item 1, on loopback: a daemon and `orchestrator worker` processes over
tcp + CURVE run a workspace turn whose tools execute on the worker; cancelling the turn kills the
remote tool's processes; `kill -9` of the worker fails the running turn with one clear error within
the heartbeat timeout, and the next turn runs on another live worker of the pool."""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
import trio

from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from tests.e2e.conftest import run_turn
from tests.fakes import Answer, ToolCall, open_fake_openai

from orchestrator.cli import main

from .conftest import REPO, process_alive, start_worker_process, stop_worker_process, workers_config


def main_cli_ok(argv: list[str]) -> bool:
    return main(argv) == 0

MODELS = """
providers:
  loc: {{kind: openai_compatible, base_url: "{url}", api_key_env: null}}
models:
  "loc:m": {{tier: balanced, can_delegate: true}}
  "loc:w": {{tier: fast}}
"""
ROUTING = "schema_version: 1\nglobal_default: loc:m\ntiers: {fast: loc:w, balanced: loc:m, deep: loc:m}\n"
WORKSPACE_YAML = "tools: {run_command: true}\nworker_pool: build\npass_env: [WORKER_MARK]\n"


@pytest.fixture
async def fake():
    async with open_fake_openai(api_key=None) as f:
        yield f


@pytest.fixture
async def daemon(nursery, short_tmp, fake, server_pair, worker_pair):
    home = short_tmp / "home"
    home.mkdir()
    (home / "models.yaml").write_text(MODELS.format(url=fake.base_url))
    (home / "routing.yaml").write_text(ROUTING)
    settings = DaemonSettings(shutdown_grace_s=1.0,
                              workers=workers_config(server_pair[0], worker_pair[1].public, heartbeat_s=0.5))
    d = Daemon(Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock"), settings)
    await nursery.start(d.run)
    yield d
    d.request_stop("test over")


@pytest.fixture
def workspace(short_tmp) -> Path:
    ws = short_tmp / "ws"
    (ws / ".orchestrator").mkdir(parents=True)
    (ws / ".orchestrator" / "workspace.yaml").write_text(WORKSPACE_YAML)
    return ws


@pytest.fixture
async def workers(daemon, short_tmp, worker_pair, server_pair):
    started = []

    async def start(name: str = "w"):
        assert daemon.workers is not None and daemon.workers.endpoint
        proc = await start_worker_process(daemon.workers.endpoint, worker_pair[0], server_pair[1].public,
                                          short_tmp / name, mark=f"on-{name}")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_worker_process(proc)


async def wait_for_file(path: Path, lines: int = 1) -> list[str]:
    while not path.exists() or len(path.read_text().split()) < lines:
        await trio.sleep(0.02)
    return path.read_text().split()


async def test_a_workspace_turns_tools_run_on_the_remote_worker(daemon, fake, workspace, workers):
    worker = await workers("alpha")
    fake.script(
        Answer(text=(), tool_calls=(ToolCall("run_command", {"command": "echo mark=$WORKER_MARK ppid=$PPID"}),)),
        Answer(text=("done",)),
    )
    async with open_client(daemon.paths.endpoint) as client:
        info = await client.open_session(workspace=str(workspace))
        _, events = await run_turn(client, info.session_id, "where do tools run?")
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]
    returned = [e for e in events if isinstance(e, ev.ToolReturned)]
    assert len(returned) == 1 and not returned[0].is_error, returned
    # The worker's own environment (the daemon has no WORKER_MARK) and the worker's pid as the parent.
    assert "WORKER_MARK" not in os.environ
    assert f"mark=on-alpha ppid={worker.pid}" in returned[0].content
    worker.proc.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(worker.proc.wait) == 0


async def test_orchestrator_worker_with_a_key_the_daemon_does_not_allow_exits_1_with_one_line(
        daemon, short_tmp, server_pair):
    assert main_cli_ok(["keys", "generate", "--out", str(short_tmp / "stranger.key")])
    result = await trio.run_process(
        [sys.executable, "-m", "orchestrator", "worker", "--connect", daemon.workers.endpoint,
         "--key", str(short_tmp / "stranger.key"), "--server-key", str(server_pair[0]), "--hello-timeout", "1"],
        capture_stdout=True, capture_stderr=True, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    err = result.stderr.decode().strip()
    assert err.startswith("orchestrator: no answer from tcp://127.0.0.1:") and "refused this worker's key" in err
    assert len(err.splitlines()) == 1 and result.stdout == b""
    assert daemon.workers.zap.refused >= 1 and daemon.workers.fleet.workers == {}


async def test_cancelling_the_turn_kills_the_remote_tool_process(daemon, fake, workspace, workers):
    await workers("alpha")
    fake.script(Answer(text=(), tool_calls=(ToolCall("run_command", {"command": "echo $$ > pid; exec sleep 60"}),)))
    async with open_client(daemon.paths.endpoint) as client:
        info = await client.open_session(workspace=str(workspace))
        events = []
        async with client.turn(info.session_id, "run something long") as turn:
            async for e in turn:
                events.append(e)
                if isinstance(e, ev.ToolCalled):
                    pid = int((await wait_for_file(workspace / "pid"))[0])
                    assert process_alive(pid)
                    await turn.cancel()
    assert isinstance(events[-1], ev.TurnCancelled), events[-1]
    assert not process_alive(pid)


async def test_kill_9_of_the_worker_fails_the_turn_with_worker_lost_and_the_next_turn_uses_another_worker(
        daemon, fake, workspace, workers):
    first = await workers("alpha")
    await workers("beta")   # joined later: the tie on running calls goes to alpha first
    fake.script(
        Answer(text=(), tool_calls=(ToolCall("run_command", {"command": "echo $$ > pid; exec sleep 60"}),)),
        Answer(text=(), tool_calls=(ToolCall("run_command", {"command": "echo mark=$WORKER_MARK"}),)),
        Answer(text=("done",)),
    )
    orphan = None
    try:
        async with open_client(daemon.paths.endpoint) as client:
            info = await client.open_session(workspace=str(workspace))
            events = []
            async with client.turn(info.session_id, "run something long") as turn:
                async for e in turn:
                    events.append(e)
                    if isinstance(e, ev.ToolCalled):
                        orphan = int((await wait_for_file(workspace / "pid"))[0])
                        os.kill(first.pid, signal.SIGKILL)
            failed = events[-1]
            assert isinstance(failed, ev.TurnFailed), failed
            assert failed.error == "worker_lost"
            assert "remote worker w1 (pool 'build'" in failed.message
            assert "was lost (no heartbeat for 1.5 s) while running tool run_command" in failed.message
            assert sum(isinstance(e, (ev.TurnFailed, ev.TurnCompleted, ev.TurnCancelled)) for e in events) == 1

            _, events = await run_turn(client, info.session_id, "again")
    finally:
        if orphan is not None and process_alive(orphan):
            os.kill(orphan, signal.SIGKILL)   # kill -9 leaves the worker's child behind (documented)
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]
    returned = [e for e in events if isinstance(e, ev.ToolReturned)]
    assert "mark=on-beta" in returned[0].content


async def test_a_turn_in_a_pooled_workspace_without_live_workers_fails_with_no_worker(daemon, fake, workspace):
    fake.script(Answer(text=(), tool_calls=(ToolCall("write_file", {"path": "x.txt", "content": "x"}),)))
    async with open_client(daemon.paths.endpoint) as client:
        info = await client.open_session(workspace=str(workspace))
        _, events = await run_turn(client, info.session_id, "write it")
    assert isinstance(events[-1], ev.TurnFailed) and events[-1].error == "no_worker", events[-1]
    assert "no live worker in pool 'build'" in events[-1].message
    assert not (workspace / "x.txt").exists()


DELEGATE = ToolCall("delegate", {"tier": "fast", "task": "run the check", "context": {"mode": "minimal"}})


async def test_a_delegated_workers_tools_run_on_the_remote_worker(daemon, fake, workspace, workers):
    worker = await workers("alpha")
    fake.script(
        Answer(text=(), tool_calls=(DELEGATE,)),                                               # planner
        Answer(text=(), tool_calls=(ToolCall("run_command", {"command": "echo mark=$WORKER_MARK ppid=$PPID"}),)),
        Answer(text=("checked",)),                                                             # worker
        Answer(text=("all good",)),                                                            # planner
    )
    async with open_client(daemon.paths.endpoint) as client:
        info = await client.open_session(workspace=str(workspace))
        _, events = await run_turn(client, info.session_id, "delegate the check")
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]
    assert any(isinstance(e, ev.DelegateCompleted) for e in events), events
    # The worker model's second call carries the tool's result: it ran in the worker process.
    worker_followup = str(fake.requests[2].json["messages"])
    assert f"mark=on-alpha ppid={worker.pid}" in worker_followup


async def test_kill_9_of_the_worker_fails_the_delegation_with_one_clear_error(daemon, fake, workspace, workers):
    first = await workers("alpha")
    fake.script(
        Answer(text=(), tool_calls=(DELEGATE,)),
        Answer(text=(), tool_calls=(ToolCall("run_command", {"command": "echo $$ > pid; exec sleep 60"}),)),
        Answer(text=("the check could not run",)),
    )
    orphan = None
    try:
        async with open_client(daemon.paths.endpoint) as client:
            info = await client.open_session(workspace=str(workspace))
            events = []
            async with client.turn(info.session_id, "delegate the check") as turn:
                async for e in turn:
                    events.append(e)
                    if isinstance(e, ev.DelegateStarted):
                        orphan = int((await wait_for_file(workspace / "pid"))[0])
                        os.kill(first.pid, signal.SIGKILL)
    finally:
        if orphan is not None and process_alive(orphan):
            os.kill(orphan, signal.SIGKILL)
    failed = [e for e in events if isinstance(e, ev.DelegateFailed)]
    assert len(failed) == 1, events
    assert failed[0].error.startswith("worker_error: remote worker w1 (pool 'build'")
    assert "was lost (no heartbeat for 1.5 s) while running tool run_command" in failed[0].error
    assert isinstance(events[-1], ev.TurnCompleted), events[-1]   # the planner read the failure and answered


async def orchestrator_status(daemon, *args: str) -> str:
    """``orchestrator status`` run as the user would, against this daemon."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCHESTRATOR_HOME": str(daemon.paths.home),
           "ORCHESTRATOR_STATE": str(daemon.paths.state), "ORCHESTRATOR_ENDPOINT": daemon.paths.endpoint}
    result = await trio.run_process([sys.executable, "-m", "orchestrator", "status", *args], env=env,
                                    capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


async def test_status_lists_each_connected_worker_with_its_key_pool_host_heartbeat_and_running_calls(
        daemon, fake, workspace, workers, worker_pair):
    assert "remote workers" not in await orchestrator_status(daemon)   # none connected: nothing shown
    alpha = await workers("alpha")
    beta = await workers("beta")
    key = worker_pair[1].public.decode()
    fake.script(Answer(text=(), tool_calls=(ToolCall("run_command", {"command": "echo $$ > pid; exec sleep 60"}),)))
    async with open_client(daemon.paths.endpoint) as client:
        listed = (await client.status()).workers
        assert [(w["id"], w["pool"], w["host"], w["pid"], w["public_key"], w["running"]) for w in listed] == [
            ("w1", "build", socket.gethostname(), alpha.pid, key, 0),
            ("w2", "build", socket.gethostname(), beta.pid, key, 0)]
        assert all(w["heartbeat_age_s"] >= 0 for w in listed)
        info = await client.open_session(workspace=str(workspace))
        async with client.turn(info.session_id, "run something long") as turn:
            async for e in turn:
                if isinstance(e, ev.ToolCalled):
                    await wait_for_file(workspace / "pid")
                    as_json = json.loads(await orchestrator_status(daemon, "--json"))
                    text = await orchestrator_status(daemon)
                    await turn.cancel()
    assert [(w["id"], w["running"]) for w in as_json["workers"]] == [("w1", 1), ("w2", 0)]
    assert as_json["workers"][0]["public_key"] == key and as_json["workers"][0]["pid"] == alpha.pid
    lines = text.splitlines()
    at = lines.index("remote workers:")
    host = socket.gethostname()
    assert lines[at + 1].startswith(f"  w1   pool build      {host} pid {alpha.pid} · key {key[:10]}… · heartbeat ")
    assert lines[at + 1].endswith("s ago · running 1 call") and lines[at + 2].endswith("running 0 calls")
