"""The daemon's side of remote workers: one CURVE ROUTER that workers connect to, one owning task.

A worker says ``WorkerHello`` (its pool), gets ``WorkerWelcome``, and from then on both sides send
``WorkerHeartbeat`` every ``heartbeat_s``. A tool call of a workspace whose ``worker_pool`` names a
pool goes to that pool's least busy live worker as ``RunTool`` and comes back as ``ToolDone``.

Failure behaviour (docs/remote-workers.md):
- a pool with no live worker: the call is not run anywhere else (the pool may exist to keep tools
  off the daemon's host); ``NoLiveWorker`` ends the turn with ``no_worker`` and says how to fix it;
- a worker silent for 3 heartbeats (``kill -9``, a cut cable): every call it was running fails
  with ``WorkerLost`` (``worker_lost``) and the worker leaves the pool; new calls go to the others;
- a cancelled turn: ``CancelTool`` crosses the wire and the hub waits (bounded) for the worker to
  confirm that the call — and its process group — is gone before the cancellation goes on.

This is not the node's client ROUTER: the trust boundaries differ (a worker holds an allowed key;
a client is any local user), so worker messages never pass the client allow-list and a client can
never pose as a worker.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs
import structlog
import trio
import zmq

from protocol.bounds import OutOfBounds, check_bounds
from protocol.codec import MAX_FRAME_BYTES, Envelope, decode, encode, new_id
from protocol.errors import FrameError
from protocol.messages import (
    CancelTool, Failure, RunTool, ToolDone, WorkerHeartbeat, WorkerHello, WorkerWelcome,
)
from protocol.transport import EndpointError, ZmqSocket, open_zmq_socket

from actors.remote.config import WorkersConfig
from actors.remote.fleet import Fleet, Worker
from actors.remote.keys import KeyPair
from actors.remote.zap import ZAP_DOMAIN, ZapPolicy, run_zap_handler
from actors.tools import ToolContext, ToolOutcome

log = structlog.get_logger("workers")

# How long a cancelled call waits for the worker to confirm the tool (and its processes) stopped:
# run_command's own cleanup is TERM, a grace, KILL, bounded at 2 s.
CANCEL_ACK_S = 5.0
MAX_WIRE_BYTES = MAX_FRAME_BYTES + 1024 * 1024


class WorkersError(Exception):
    """The hub cannot start as configured (bad key file, address in use); one line."""


class NoLiveWorker(Exception):
    failure_code = "no_worker"


class WorkerLost(Exception):
    failure_code = "worker_lost"


@attrs.define
class _Call:
    worker_id: str
    tool: str
    done: trio.Event = attrs.field(factory=trio.Event)
    result: ToolDone | None = None
    lost: str | None = None


class WorkerHub:
    """Serves remote workers; ``dispatch`` is what the tool box calls for a pooled workspace."""

    def __init__(self, config: WorkersConfig, server: KeyPair, allowed: Iterable[bytes]) -> None:
        if server.secret is None:
            raise WorkersError("workers.server_key must be a key pair (it holds only a public key)")
        self.config = config
        self.server = server
        self.zap = ZapPolicy(frozenset(allowed))
        self.fleet = Fleet(config.heartbeat_s)
        self.endpoint: str | None = None
        self.changed = trio.Event()          # set (and renewed) whenever a worker joins or leaves
        self._sock: ZmqSocket | None = None
        self._rids: dict[str, bytes] = {}    # worker id → ZeroMQ routing id
        self._ids: dict[bytes, str] = {}     # routing id → worker id
        self._calls: dict[str, _Call] = {}
        self._serial = 0

    # --- serving -------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        # A context of our own: the ZAP handler endpoint is per context, so it governs only this socket.
        ctx = zmq.Context()
        options: dict[int, int | bytes] = {
            zmq.CURVE_SERVER: 1,
            zmq.CURVE_PUBLICKEY: self.server.public,
            zmq.CURVE_SECRETKEY: self.server.secret or b"",
            zmq.ZAP_DOMAIN: ZAP_DOMAIN,
            zmq.ZAP_ENFORCE_DOMAIN: 1,     # no handler → refused, never admitted unchecked
            zmq.MAXMSGSIZE: MAX_WIRE_BYTES,
        }
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(run_zap_handler, ctx, self.zap)   # before bind: nobody in unchecked
                try:
                    async with open_zmq_socket(ctx, zmq.ROUTER, bind=self.config.listen, options=options,
                                               receive_buffer=1024, send_buffer=1024, peer_address=True) as sock:
                        await self._serve_socket(sock, nursery, task_status)
                except EndpointError as exc:
                    raise WorkersError(f"cannot listen for workers on {self.config.listen} "
                                       f"(daemon.yaml workers.listen): {exc}") from None
                nursery.cancel_scope.cancel()
        finally:
            ctx.destroy(linger=0)

    async def _serve_socket(self, sock: ZmqSocket, nursery: trio.Nursery, task_status: trio.TaskStatus[str]) -> None:
        self._sock = sock
        self.endpoint = sock.last_endpoint or self.config.listen
        try:
            nursery.start_soon(self._beat)
            log.info("listening for workers", endpoint=self.endpoint, pools=list(self.config.pools))
            task_status.started(self.endpoint)
            async for frames in sock:
                if len(frames) >= 2:
                    # The ZAP handler's User-Id: the worker's public key (peer_address=True reads it).
                    await self._on_frame(frames[0], frames[-1], getattr(frames, "user", None) or "")
        finally:
            self._sock = None
            self._fail_all("the daemon is stopping")
            nursery.cancel_scope.cancel()

    async def _on_frame(self, rid: bytes, payload: bytes, public_key: str = "") -> None:
        try:
            env = decode(payload)
            check_bounds(env.body)
        except (FrameError, OutOfBounds) as exc:
            log.warning("bad frame from a worker connection", error=str(exc)[:200])
            return
        body = env.body
        now = trio.current_time()
        if isinstance(body, WorkerHello):
            await self._on_hello(rid, body, now, public_key)
            return
        worker_id = self._ids.get(rid)
        if worker_id is None or not self.fleet.heard(worker_id, now):
            # Declared lost (or never said hello): it must introduce itself again.
            await self._send(rid, Failure("unknown_worker", "say hello first (this worker was declared lost)"))
            return
        if isinstance(body, ToolDone):
            call = self._calls.get(body.call_id)
            if call is not None and call.worker_id == worker_id and not call.done.is_set():
                call.result = body
                call.done.set()

    async def _on_hello(self, rid: bytes, hello: WorkerHello, now: float, public_key: str = "") -> None:
        if hello.pool not in self.config.pools:
            await self._send(rid, Failure("unknown_pool", f"pool {hello.pool!r} is not in daemon.yaml "
                                                          f"workers.pools ({', '.join(self.config.pools)})"))
            return
        old = self._ids.pop(rid, None)
        if old is not None:   # the same connection starts over: what it ran before is gone
            self._drop(old, "it restarted")
        self._serial += 1
        worker_id = f"w{self._serial}"
        self._ids[rid] = worker_id
        self._rids[worker_id] = rid
        worker = self.fleet.join(worker_id, hello.pool, hello.host[:200], hello.pid, now, public_key)
        log.info("worker joined", worker=worker.describe())
        self._changed()
        await self._send(rid, WorkerWelcome(worker_id, self.config.heartbeat_s))

    async def _beat(self) -> None:
        """Heartbeats out every ``heartbeat_s``; silent workers are swept twice as often."""
        interval = self.config.heartbeat_s
        next_beat = trio.current_time()
        while True:
            now = trio.current_time()
            for worker in self.fleet.sweep(now):
                self._drop(worker.worker_id, f"no heartbeat for {self.fleet.timeout:g} s", worker)
            if now >= next_beat:
                next_beat = now + interval
                for rid in list(self._ids):
                    await self._send(rid, WorkerHeartbeat())
            await trio.sleep(interval / 2)

    def _drop(self, worker_id: str, why: str, worker: Worker | None = None) -> None:
        worker = worker or self.fleet.leave(worker_id)
        rid = self._rids.pop(worker_id, None)
        if rid is not None:
            self._ids.pop(rid, None)
        who = worker.describe() if worker is not None else f"worker {worker_id}"
        log.warning("worker lost", worker=who, reason=why)
        for call in self._calls.values():
            if call.worker_id == worker_id and not call.done.is_set():
                call.lost = (f"remote {who} was lost ({why}) while running tool {call.tool}; "
                             "the call did not finish")
                call.done.set()
        self._changed()

    def _fail_all(self, why: str) -> None:
        for call in self._calls.values():
            if not call.done.is_set():
                call.lost = f"{why}: remote tool {call.tool} did not finish"
                call.done.set()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def _send(self, rid: bytes, body: object) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            await sock.send([rid, encode(Envelope(body, "worker", "hub", new_id()))])
        except trio.ClosedResourceError:
            pass

    # --- the tool box's side ---------------------------------------------------------------------

    async def dispatch(self, ctx: ToolContext, name: str, input: dict, *,
                       allowed: set[str] | frozenset[str] | None = None) -> ToolOutcome:
        """Run one built-in tool call on a live worker of ``ctx.worker_pool``.

        Raises ``NoLiveWorker`` / ``WorkerLost`` (the turn fails with that one error); trio.Cancelled
        propagates only after the worker confirmed the call stopped (or ``CANCEL_ACK_S`` passed).
        """
        pool = ctx.worker_pool or ""
        if pool not in self.config.pools:
            raise NoLiveWorker(f"the workspace names worker pool {pool!r}, which daemon.yaml workers.pools "
                               f"does not declare ({', '.join(self.config.pools)}); tool {name} was not run")
        worker = self.fleet.choose(pool, trio.current_time())
        rid = self._rids.get(worker.worker_id) if worker is not None else None
        if worker is None or rid is None or self._sock is None:
            raise NoLiveWorker(f"no live worker in pool {pool!r} (start one: orchestrator worker --connect "
                               f"{self.endpoint or self.config.listen} --pool {pool}); tool {name} was not run")
        assert ctx.workspace is not None
        call_id = new_id()
        call = self._calls[call_id] = _Call(worker.worker_id, name)
        worker.running += 1
        try:
            await self._send(rid, RunTool(call_id, str(ctx.workspace), name, dict(input),
                                          tuple(sorted(allowed)) if allowed is not None else None,
                                          ctx.run_command_allowed, ctx.command_timeout_s, ctx.output_cap_bytes,
                                          ctx.is_worker))
            await call.done.wait()
        except trio.Cancelled:
            with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_ACK_S):
                await self._send(rid, CancelTool(call_id))
                await call.done.wait()
            raise
        finally:
            self._calls.pop(call_id, None)
            worker.running -= 1
        if call.lost is not None:
            raise WorkerLost(call.lost)
        assert call.result is not None
        return ToolOutcome(call.result.content, call.result.is_error)

    def status(self) -> dict[str, object]:
        return {"endpoint": self.endpoint, "pools": self.fleet.pools(), "pid": os.getpid(),
                "refused": self.zap.refused}

    def connected(self) -> tuple[dict, ...]:
        """The connected workers for ``orchestrator status`` (``Fleet.describe_all``)."""
        return self.fleet.describe_all(trio.current_time())


def hub_from_config(config: WorkersConfig, *, state: Path, home: Path) -> WorkerHub:
    """The hub with its keys read: ``WorkersError`` names the key or file that cannot be used."""
    from actors.remote.keys import KeyFileError, load_server_keys

    try:
        server, allowed = load_server_keys(config.server_key, config.allow, state=state, home=home, section="workers")
    except KeyFileError as exc:
        raise WorkersError(str(exc)) from None
    return WorkerHub(config, server, allowed)
