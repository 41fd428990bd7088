"""The hub and a worker in one process over loopback tcp + CURVE: admission, tool calls,
cancellation across the wire, a lost worker."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from actors.remote.config import WorkersConfig
from actors.remote.hub import CANCEL_ACK_S, NoLiveWorker, WorkerHub, WorkerLost
from actors.remote.keys import generate_key_pair
from actors.remote.worker import RemoteWorker, WorkerRefused
from actors.tools import ToolContext

from .conftest import process_alive, workers_config


@pytest.fixture
async def hub(nursery, server_pair, worker_pair):
    server_file, server = server_pair
    _, worker = worker_pair
    h = WorkerHub(workers_config(server_file, worker.public), server, [worker.public])
    await nursery.start(h.serve)
    return h


def ctx_for(workspace: Path, pool: str = "build") -> ToolContext:
    return ToolContext(workspace=workspace, run_command_allowed=True, worker_pool=pool)


async def test_a_worker_without_an_allowed_key_is_refused_and_never_joins(hub, server_pair):
    stranger = generate_key_pair()
    worker = RemoteWorker(hub.endpoint, stranger, server_pair[1].public, "build", hello_timeout_s=5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.zap.refused_event.wait)
        with pytest.raises(WorkerRefused, match="refused this worker's key"):
            await worker.run()
    assert hub.zap.refused >= 1 and hub.zap.admitted == 0
    assert hub.fleet.workers == {}


async def test_a_worker_that_does_not_know_the_daemons_key_never_joins(hub, worker_pair):
    wrong_server = generate_key_pair()
    worker = RemoteWorker(hub.endpoint, worker_pair[1], wrong_server.public, "build", hello_timeout_s=1)
    with pytest.raises(WorkerRefused, match="no answer"):
        await worker.run()
    assert hub.fleet.workers == {}


async def test_a_worker_for_an_undeclared_pool_is_refused_with_the_reason(hub, server_pair, worker_pair):
    worker = RemoteWorker(hub.endpoint, worker_pair[1], server_pair[1].public, "gpu", hello_timeout_s=5)
    with pytest.raises(WorkerRefused, match="pool 'gpu' is not in daemon.yaml workers.pools"):
        await worker.run()


async def test_tool_calls_of_a_pooled_workspace_run_on_the_worker(nursery, hub, server_pair, worker_pair, short_tmp):
    ws = short_tmp / "ws"
    ws.mkdir()
    worker = RemoteWorker(hub.endpoint, worker_pair[1], server_pair[1].public, "build")
    worker_id = await nursery.start(worker.run)
    assert hub.fleet.pools() == {"build": 1}
    out = await hub.dispatch(ctx_for(ws), "write_file", {"path": "a.txt", "content": "hello"})
    assert not out.is_error, out.content
    out = await hub.dispatch(ctx_for(ws), "run_command", {"command": "cat a.txt; echo; echo pid=$PPID"})
    assert not out.is_error and "hello" in out.content and f"pid={os.getpid()}" in out.content
    assert worker.calls_run == 2 and worker_id == "w1"


async def test_a_pool_without_a_live_worker_fails_the_call_and_runs_nothing(hub, short_tmp):
    ws = short_tmp / "ws"
    ws.mkdir()
    with pytest.raises(NoLiveWorker, match="no live worker in pool 'build'"):
        await hub.dispatch(ctx_for(ws), "write_file", {"path": "a.txt", "content": "x"})
    with pytest.raises(NoLiveWorker, match="does not declare"):
        await hub.dispatch(ctx_for(ws, "gpu"), "write_file", {"path": "a.txt", "content": "x"})
    assert not (ws / "a.txt").exists()


async def test_cancelling_a_call_stops_the_remote_process_group_before_the_cancel_returns(
        nursery, hub, server_pair, worker_pair, short_tmp):
    ws = short_tmp / "ws"
    ws.mkdir()
    worker = RemoteWorker(hub.endpoint, worker_pair[1], server_pair[1].public, "build")
    await nursery.start(worker.run)
    started = trio.Event()
    pid_file = ws / "pid"

    async def watch() -> None:
        while not pid_file.exists() or len(pid_file.read_text().split()) < 2:
            await trio.sleep(0.02)
        started.set()

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as inner:
            inner.start_soon(watch)
            inner.start_soon(hub.dispatch, ctx_for(ws), "run_command",
                             {"command": "echo $$ > pid; sleep 5 & echo $! >> pid; wait"})
            await started.wait()
            scope.cancel()
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2 and not any(process_alive(pid) for pid in pids)
    assert not worker._running and CANCEL_ACK_S > 0


async def test_a_worker_that_falls_silent_fails_its_running_call_with_worker_lost(
        nursery, hub, server_pair, worker_pair, short_tmp):
    ws = short_tmp / "ws"
    ws.mkdir()
    worker = RemoteWorker(hub.endpoint, worker_pair[1], server_pair[1].public, "build")
    worker_scope = trio.CancelScope()

    async def run_worker(task_status=trio.TASK_STATUS_IGNORED) -> None:
        with worker_scope:
            await worker.run(task_status=task_status)

    await nursery.start(run_worker)

    async def silence_worker_once_started() -> None:
        while not (ws / "started").exists():
            await trio.sleep(0.02)
        worker_scope.cancel()   # the worker vanishes: no answer, no more heartbeats

    nursery.start_soon(silence_worker_once_started)
    lost = r"remote worker w1 .* was lost \(no heartbeat for 1.5 s\) while running tool run_command"
    with pytest.raises(WorkerLost, match=lost):
        await hub.dispatch(ctx_for(ws), "run_command", {"command": "touch started; sleep 30"})
    assert hub.fleet.workers == {}


async def test_a_worker_says_when_it_rejoins_a_daemon_that_came_back(nursery, server_pair, worker_pair):
    server_file, server = server_pair
    _, keys = worker_pair
    first = WorkerHub(workers_config(server_file, keys.public), server, [keys.public])
    rejoined: list[str] = []
    async with trio.open_nursery() as daemon:
        endpoint = await daemon.start(first.serve)
        worker = RemoteWorker(endpoint, keys, server.public, "build", on_rejoin=rejoined.append)
        await nursery.start(worker.run)
        daemon.cancel_scope.cancel()           # the daemon goes away …
    again = WorkerHub(WorkersConfig(endpoint, (keys.public.decode(),), str(server_file), 0.5, ("default", "build")),
                      server, [keys.public])
    await nursery.start(again.serve)           # … and comes back on the same address
    with trio.fail_after(30):
        while not rejoined:
            await trio.sleep(0.05)
    assert rejoined == [worker.worker_id]
