"""Shutdown: any number of SIGTERM/SIGINT take the same clean path (grace, cancel, persist, remove
the socket, a final log line, exit 0) — ``timeout`` and systemd send signals in bursts."""
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from actors.runtime.store import Store
from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from protocol.errors import RemoteError
from protocol.messages import StartTurn

PY = sys.executable


def _serve(env):
    log_path = Path(env["ORCHESTRATOR_STATE"] + ".log")
    with open(log_path, "a") as log:
        proc = subprocess.Popen([PY, "-m", "orchestrator", "serve"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while "daemon ready" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"daemon did not become ready:\n{log_path.read_text()}")
        time.sleep(0.05)
    return proc, log_path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("gap_s", [0.005, 0.05], ids=["5ms", "50ms"])
def test_two_signals_in_a_row_still_stop_the_daemon_cleanly_with_exit_0(env, sig, gap_s):
    proc, log_path = _serve(env)
    socket_file = Path(env["ORCHESTRATOR_ENDPOINT"].removeprefix("ipc://"))
    assert socket_file.exists()
    try:
        proc.send_signal(sig)
        time.sleep(gap_s)
        proc.send_signal(sig)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = log_path.read_text()
    assert code == 0, log
    assert not socket_file.exists()
    assert "daemon stopped" in log.splitlines()[-1] or "daemon stopped" in log
    assert "Traceback" not in log


def test_a_burst_of_signals_during_shutdown_takes_the_same_clean_path(env):
    proc, log_path = _serve(env)
    socket_file = Path(env["ORCHESTRATOR_ENDPOINT"].removeprefix("ipc://"))
    try:
        for sig in [signal.SIGTERM, signal.SIGHUP, signal.SIGINT] * 4:  # a reload request among them too
            proc.send_signal(sig)
            time.sleep(0.002)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = log_path.read_text()
    assert code == 0, log
    assert not socket_file.exists() and "daemon stopped" in log and "Traceback" not in log


@pytest.mark.parametrize("grace", [-1.0, math.nan], ids=["negative", "nan"])
async def test_an_unusable_grace_period_cannot_crash_the_shutdown(paths, grace):
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=grace), demo_chunk_delay=0.0)
    async with trio.open_nursery() as n:
        await n.start(daemon.run)
        daemon.request_stop("test")
    assert not Path(str(paths.endpoint).removeprefix("ipc://")).exists()


@pytest.mark.parametrize("grace, ends_with", [(0.0, ev.TurnCancelled), (30.0, ev.TurnCompleted)],
                         ids=["no-grace", "grace"])
async def test_stopping_drains_running_turns_by_message_each_ending_once(paths, wire_mode, grace, ends_with):
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=grace), wire_mode=wire_mode, demo_chunk_delay=0.01)
    async with trio.open_nursery() as n:
        await n.start(daemon.run)
        async with open_client(daemon.paths.endpoint) as client:
            sid, other = [(await client.open_session()).session_id for _ in range(2)]
            async with client.turn(sid, "a long answer") as turn:
                async for e in turn:
                    if isinstance(e, ev.TextDelta) and not daemon.stop_reason:
                        daemon.request_stop("test")
                        if grace:  # the daemon still serves while the turn finishes: no new turns
                            while (await client.status()).accepting_turns:
                                await trio.sleep(0.01)
                            with pytest.raises(RemoteError) as refused:
                                await client.request("session", StartTurn(other, "too late"))
                            assert refused.value.code == "shutting_down"
    assert isinstance(turn.terminal, ends_with)
    if ends_with is ev.TurnCancelled:
        assert turn.terminal.reason == "daemon_shutdown"
    store = Store(paths.database)  # the daemon has stopped: what did it persist?
    terminals = [e for e in store.events(turn_id=turn.turn_id)
                 if e["type"] in ("turn.completed", "turn.failed", "turn.cancelled")]
    store.close()
    assert len(terminals) == 1
