"""The worker process's side (``orchestrator worker``): a CURVE DEALER that runs tool calls.

One task owns the socket (reads it, hands calls to tasks); each call runs in its own cancel scope
so ``CancelTool`` stops exactly that call — ``run_command``'s cleanup then ends its whole process
group. If the daemon falls silent for 3 heartbeats, every running call is cancelled the same way
and the worker says hello again (ZeroMQ reconnects by itself), so a restarted daemon gets it back.

Tools run as ``actors.tools.dispatch`` runs them in the daemon, on this host: the workspace path
must exist here, and run_command's environment is built from *this* process's environment and the
workspace's own workspace.yaml (``env``, ``pass_env``).
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import structlog
import trio
import zmq

from protocol.codec import Envelope, decode, encode, new_id
from protocol.errors import FrameError
from protocol.messages import (
    CancelTool, Failure, RunTool, ToolDone, WorkerHeartbeat, WorkerHello, WorkerWelcome,
)
from protocol.transport import ZmqSocket, open_zmq_socket

from actors.config.registry import DEFAULT_KEY_ENV
from actors.remote.fleet import Silence
from actors.remote.hub import MAX_WIRE_BYTES
from actors.remote.keys import KeyPair
from actors.tools import ToolContext, dispatch
from actors.tools.workspace import load_workspace_settings

log = structlog.get_logger("worker")

HELLO_TIMEOUT_S = 10.0


class WorkerRefused(Exception):
    """The daemon did not take this worker (no answer, wrong key, unknown pool); one line."""


class RemoteWorker:
    def __init__(self, connect: str, key: KeyPair, server_public: bytes, pool: str = "default", *,
                 hello_timeout_s: float = HELLO_TIMEOUT_S,
                 on_rejoin: Callable[[str], None] | None = None) -> None:
        if key.secret is None:
            raise WorkerRefused("the worker's --key file holds only a public key; it needs a key pair")
        self.connect = connect
        self.key = key
        self.server_public = server_public
        self.pool = pool
        self.hello_timeout_s = hello_timeout_s
        self.on_rejoin = on_rejoin     # called with the worker id when a daemon that was lost welcomes it again
        self.worker_id: str | None = None
        self.calls_run = 0
        self._running: dict[str, trio.CancelScope] = {}

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status`` gets the worker id once the daemon welcomed us.
        The first hello must be answered (else ``WorkerRefused``); later ones are retried forever."""
        ctx = zmq.Context()
        options: dict[int, int | bytes] = {
            zmq.CURVE_SERVERKEY: self.server_public,
            zmq.CURVE_PUBLICKEY: self.key.public,
            zmq.CURVE_SECRETKEY: self.key.secret or b"",
            # Queue only on a connection whose handshake (and ZAP check) completed: a refused
            # worker never has a stale hello delivered later.
            zmq.IMMEDIATE: 1,
            zmq.MAXMSGSIZE: MAX_WIRE_BYTES,
        }
        try:
            async with open_zmq_socket(ctx, zmq.DEALER, connect=self.connect, options=options) as sock:
                first = True
                while True:
                    welcome = await self._hello(sock, must_answer=first)
                    if welcome is None:
                        continue
                    self.worker_id = welcome.worker_id
                    if first:
                        task_status.started(welcome.worker_id)
                        first = False
                    else:
                        log.info("the daemon is back; serving again", endpoint=self.connect,
                                 worker_id=welcome.worker_id)
                        if self.on_rejoin is not None:
                            self.on_rejoin(welcome.worker_id)
                    await self._serve(sock, welcome.heartbeat_s)
                    log.warning("lost the daemon; saying hello again", endpoint=self.connect)
        finally:
            ctx.destroy(linger=0)

    async def _hello(self, sock: ZmqSocket, *, must_answer: bool) -> WorkerWelcome | None:
        hello = WorkerHello(self.pool, socket.gethostname(), os.getpid())
        with trio.move_on_after(self.hello_timeout_s):
            await _send(sock, hello)
            while True:
                env = _decoded(await sock.receive())
                if env is None:
                    continue
                if isinstance(env.body, WorkerWelcome):
                    return env.body
                if isinstance(env.body, Failure) and env.body.code != "unknown_worker":
                    raise WorkerRefused(f"the daemon refused this worker: {env.body.message}")
        if must_answer:
            raise WorkerRefused(
                f"no answer from {self.connect} within {self.hello_timeout_s:g} s: the daemon is not listening "
                "there, or it refused this worker's key (is its public key in daemon.yaml workers.allow, "
                "and is --server-key the daemon's public key?)")
        return None

    async def _serve(self, sock: ZmqSocket, heartbeat_s: float) -> None:
        """Until the daemon is lost (or forgets us): beat, run calls, obey cancellations."""
        silence = Silence(heartbeat_s, trio.current_time())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._beat, sock, heartbeat_s, silence, nursery.cancel_scope)
            async for frames in sock:
                env = _decoded(frames)
                if env is None:
                    continue
                silence.heard(trio.current_time())
                body = env.body
                if isinstance(body, RunTool):
                    scope = self._running[body.call_id] = trio.CancelScope()
                    nursery.start_soon(self._run_call, sock, body, scope)
                elif isinstance(body, CancelTool):
                    running = self._running.get(body.call_id)
                    if running is not None:
                        running.cancel()
                elif isinstance(body, Failure) and body.code == "unknown_worker":
                    break   # the daemon declared us lost: our calls are void there
            nursery.cancel_scope.cancel()

    async def _beat(self, sock: ZmqSocket, heartbeat_s: float, silence: Silence, session: trio.CancelScope) -> None:
        while not silence.lost(trio.current_time()):
            await _send(sock, WorkerHeartbeat())
            await trio.sleep(heartbeat_s)
        log.warning("no heartbeat from the daemon; cancelling running calls", timeout_s=silence.timeout)
        session.cancel()

    async def _run_call(self, sock: ZmqSocket, call: RunTool, scope: trio.CancelScope) -> None:
        try:
            with scope:
                content, is_error = await self._execute(call)
            if scope.cancelled_caught:
                content, is_error = "cancelled: the turn was cancelled; the tool was stopped", True
            self.calls_run += 1
            # Shielded: the daemon waits for this answer (a cancellation waits for its confirmation).
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await _send(sock, ToolDone(call.call_id, content, is_error, cancelled=scope.cancelled_caught))
        finally:
            self._running.pop(call.call_id, None)

    async def _execute(self, call: RunTool) -> tuple[str, bool]:
        workspace = Path(call.workspace)
        if not workspace.is_absolute() or not await trio.to_thread.run_sync(workspace.is_dir):
            return (f"workspace {call.workspace} does not exist on worker host {socket.gethostname()} "
                    "(a remote worker needs the workspace at the same path)"), True
        settings = await trio.to_thread.run_sync(load_workspace_settings, call.workspace)
        ctx = ToolContext(workspace=workspace, run_command_allowed=call.run_command_allowed,
                          command_timeout_s=call.command_timeout_s, output_cap_bytes=call.output_cap_bytes,
                          is_worker=call.is_worker,
                          command_env=settings.command_env(os.environ, secret_names=DEFAULT_KEY_ENV.values()))
        allowed = set(call.allowed_tools) if call.allowed_tools is not None else None
        log.info("running tool", tool=call.name, workspace=call.workspace)
        out = await dispatch(ctx, call.name, dict(call.input), allowed=allowed)
        return out.content, out.is_error


def _decoded(frames: list[bytes]) -> Envelope | None:
    try:
        return decode(frames[-1])
    except FrameError as exc:
        log.warning("undecodable frame from the daemon", error=str(exc)[:200])
        return None


async def _send(sock: ZmqSocket, body: object) -> None:
    await sock.send([encode(Envelope(body, "hub", "worker", new_id()))])
