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

import pytest
import trio

from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from tests.e2e.conftest import run_turn
from tests.fakes import Answer, ToolCall

from orchestrator.cli import main

from .conftest import (
    LONG_COMMAND, REPO, WHERE_AM_I, check_a_turns_tool_runs_on, process_alive, start_worker_process,
    stop_worker_process, turn_with_long_remote_command, workers_config,
)


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


def kill_9(pid: int):
    """``act`` for turn_with_long_remote_command: ``kill -9`` of the worker process ``pid``."""
    async def kill(client, turn, _command_pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
    return kill


async def test_a_workspace_turns_tools_run_on_the_remote_worker(daemon, fake, workspace, workers):
    worker = await workers("alpha")
    await check_a_turns_tool_runs_on(daemon.paths.endpoint, fake, workspace, worker, "on-alpha")
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
    fake.script(Answer(text=(), tool_calls=(LONG_COMMAND,)))

    async def cancel(client, turn, pid: int) -> None:
        assert process_alive(pid)
        await turn.cancel()

    call = await turn_with_long_remote_command(daemon.paths.endpoint, workspace, "run something long", cancel)
    assert isinstance(call.events[-1], ev.TurnCancelled), call.events[-1]
    assert call.pid is not None and not call.left_running


async def test_kill_9_of_the_worker_fails_the_turn_with_worker_lost_and_the_next_turn_uses_another_worker(
        daemon, fake, workspace, workers):
    first = await workers("alpha")
    await workers("beta")   # joined later: the tie on running calls goes to alpha first
    fake.script(
        Answer(text=(), tool_calls=(LONG_COMMAND,)),
        Answer(text=(), tool_calls=(ToolCall("run_command", {"command": "echo mark=$WORKER_MARK"}),)),
        Answer(text=("done",)),
    )
    call = await turn_with_long_remote_command(daemon.paths.endpoint, workspace, "run something long",
                                               kill_9(first.pid))
    failed = call.events[-1]
    assert isinstance(failed, ev.TurnFailed), failed
    assert failed.error == "worker_lost"
    assert "remote worker w1 (pool 'build'" in failed.message
    assert "was lost (no heartbeat for 1.5 s) while running tool run_command" in failed.message
    assert sum(isinstance(e, (ev.TurnFailed, ev.TurnCompleted, ev.TurnCancelled)) for e in call.events) == 1
    async with open_client(daemon.paths.endpoint) as client:
        _, events = await run_turn(client, call.session_id, "again")
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
        Answer(text=(), tool_calls=(WHERE_AM_I,)),
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
        Answer(text=(), tool_calls=(LONG_COMMAND,)),
        Answer(text=("the check could not run",)),
    )
    call = await turn_with_long_remote_command(daemon.paths.endpoint, workspace, "delegate the check",
                                               kill_9(first.pid), when=ev.DelegateStarted)
    events = call.events
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
    fake.script(Answer(text=(), tool_calls=(LONG_COMMAND,)))
    async with open_client(daemon.paths.endpoint) as client:
        listed = (await client.status()).workers
    assert [(w["id"], w["pool"], w["host"], w["pid"], w["public_key"], w["running"]) for w in listed] == [
        ("w1", "build", socket.gethostname(), alpha.pid, key, 0),
        ("w2", "build", socket.gethostname(), beta.pid, key, 0)]
    assert all(w["heartbeat_age_s"] >= 0 for w in listed)
    shown: dict[str, str] = {}

    async def look(client, turn, pid: int) -> None:   # while w1 runs the command
        shown["json"] = await orchestrator_status(daemon, "--json")
        shown["text"] = await orchestrator_status(daemon)
        await turn.cancel()

    await turn_with_long_remote_command(daemon.paths.endpoint, workspace, "run something long", look)
    as_json, text = json.loads(shown["json"]), shown["text"]
    assert [(w["id"], w["running"]) for w in as_json["workers"]] == [("w1", 1), ("w2", 0)]
    assert as_json["workers"][0]["public_key"] == key and as_json["workers"][0]["pid"] == alpha.pid
    lines = text.splitlines()
    at = lines.index("remote workers:")
    host = socket.gethostname()
    assert lines[at + 1].startswith(f"  w1   pool build      {host} pid {alpha.pid} · key {key[:10]}… · heartbeat ")
    assert lines[at + 1].endswith("s ago · running 1 call") and lines[at + 2].endswith("running 0 calls")
