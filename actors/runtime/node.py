"""A node puts an actor system on the wire: one ROUTER for everyone who talks to us, one DEALER per
peer node we talk to, and (in wire mode) a loopback DEALER so even local traffic is encoded.

Frames that fail to decode get a ``Failure`` reply and are otherwise dropped: a bad client can
never take the node down.
"""
from __future__ import annotations

from collections import deque

import structlog
import trio
import zmq

from protocol.codec import Envelope, decode, encode, new_id, try_peek_header
from protocol.errors import FrameError
from protocol.messages import Failure
from protocol.transport import TransportError, ZmqSocket, open_zmq_socket

from actors.runtime.kernel import ActorSystem

log = structlog.get_logger("node")

# ZeroMQ's default high-water mark (1,000 messages per peer) would silently drop events for a
# client that reads slowly — a long streamed answer is thousands of text.delta events. Queue
# generously instead: at ~150 bytes per event this bounds a stalled client at ~15 MB.
PEER_HWM = 100_000

# Inbound messages for an actor whose mailbox is full wait in a per-actor backlog, so that one busy
# actor (the session actor relaying a hundred streams) cannot hold up the node's single inbound
# loop and with it every other actor (a client's liveness Ping to ``control``). Past this many
# waiting messages for one actor the loop waits after all: overload still pushes back on clients.
BACKLOG_LIMIT = 4096


class _Backlog:
    __slots__ = ("queue", "room")

    def __init__(self) -> None:
        self.queue: deque[Envelope] = deque()
        self.room: trio.Event | None = None


class Node:
    def __init__(self, system: ActorSystem, ctx: zmq.Context | None = None):
        self.system = system
        self.ctx = ctx or zmq.Context.instance()
        self.router: ZmqSocket | None = None
        self.loopback: ZmqSocket | None = None
        self.peers: dict[str, ZmqSocket] = {}
        self._routes: dict[str, bytes] = {}       # remote node id → ROUTER routing id
        self.endpoint: str | None = None
        self.bad_frames = 0
        self._nursery: trio.Nursery | None = None
        self._backlogs: dict[str, _Backlog] = {}

    async def serve(self, bind: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Bind the ROUTER and route until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            async with open_zmq_socket(self.ctx, zmq.ROUTER, bind=bind,
                                       options={zmq.ROUTER_MANDATORY: 0, zmq.SNDHWM: PEER_HWM},
                                       receive_buffer=1024,
                                       send_buffer=1024) as router:
                self.router = router
                self.endpoint = router.last_endpoint or bind
                self.system.outbound = self._outbound
                if self.system.wire_mode:
                    await nursery.start(self._run_loopback)
                task_status.started(self.endpoint)
                try:
                    async for frames in router:
                        await self._on_router_frames(frames)
                finally:
                    self.system.outbound = None
                    nursery.cancel_scope.cancel()

    async def _run_loopback(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        ident = f"{self.system.node_id}~loop".encode()
        async with open_zmq_socket(self.ctx, zmq.DEALER, connect=self.endpoint, identity=ident) as sock:
            self.loopback = sock
            task_status.started()
            async for frames in sock:  # replies to the loopback itself arrive here
                await self._on_frame(frames[-1], None)

    async def connect_peer(self, node_id: str, endpoint: str) -> None:
        """Open a DEALER to another node so that ``node_id/actor`` addresses reach it."""
        assert self._nursery is not None
        await self._nursery.start(self._run_peer, node_id, endpoint)

    async def _run_peer(self, node_id: str, endpoint: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with open_zmq_socket(self.ctx, zmq.DEALER, connect=endpoint,
                                   identity=self.system.node_id.encode()) as sock:
            self.peers[node_id] = sock
            task_status.started()
            try:
                async for frames in sock:
                    await self._on_frame(frames[-1], None)
            finally:
                self.peers.pop(node_id, None)

    async def _on_router_frames(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            return
        await self._on_frame(frames[-1], frames[0])

    async def _on_frame(self, payload: bytes, routing_id: bytes | None) -> None:
        try:
            env = decode(payload)
        except FrameError as exc:
            self.bad_frames += 1
            await self._reject(payload, routing_id, exc)
            return
        node, _, _ = env.sender.rpartition("/")
        if routing_id is not None and node and node != self.system.node_id:
            self._routes[node] = routing_id
        if self.system.is_local(env.recipient):
            await self._deliver_inbound(env)
        else:
            await self._outbound(env)

    async def _deliver_inbound(self, env: Envelope) -> None:
        """Local delivery that never blocks on one actor's full mailbox (see BACKLOG_LIMIT);
        per actor, messages still arrive in the order the node received them."""
        name = env.recipient.rpartition("/")[2]
        backlog = self._backlogs.get(name)
        if backlog is None:
            if self.system.try_deliver_local(env):
                return
            if self._nursery is None:
                await self.system.deliver_local(env)
                return
            backlog = self._backlogs[name] = _Backlog()
            self._nursery.start_soon(self._drain_backlog, name, backlog)
        elif env.correlation_id is not None and self.system.try_deliver_local(env):
            return  # a reply someone awaits never waits behind an actor's mailbox
        backlog.queue.append(env)
        if len(backlog.queue) >= BACKLOG_LIMIT:
            if backlog.room is None:
                backlog.room = trio.Event()
            await backlog.room.wait()

    async def _drain_backlog(self, name: str, backlog: _Backlog) -> None:
        queue = backlog.queue
        try:
            while queue:
                await self.system.deliver_local(queue[0])  # waits for room: that actor's backpressure
                queue.popleft()
                if backlog.room is not None and len(queue) < BACKLOG_LIMIT // 2:
                    backlog.room.set()
                    backlog.room = None
        finally:
            if self._backlogs.get(name) is backlog:
                del self._backlogs[name]
            if backlog.room is not None:
                backlog.room.set()

    async def _reject(self, payload: bytes, routing_id: bytes | None, exc: FrameError) -> None:
        if routing_id is None or self.router is None:
            return
        msg_id, sender = try_peek_header(payload)
        reply = Envelope(Failure(exc.code, str(exc)), sender or "", self.system.address("node"), new_id(), msg_id)
        await self._send_router(routing_id, encode(reply))

    async def _outbound(self, env: Envelope) -> None:
        node, _, _ = env.recipient.rpartition("/")
        payload = encode(env)
        if not node or node == self.system.node_id:
            if self.loopback is not None:
                await _send(self.loopback, [payload])
            else:
                await self.system.deliver_local(env)
            return
        peer = self.peers.get(node)
        if peer is not None:
            await _send(peer, [payload])
            return
        routing_id = self._routes.get(node)
        if routing_id is None:
            log.warning("no route to node; dropping", recipient=env.recipient, body=type(env.body).__name__)
            return
        await self._send_router(routing_id, payload)

    async def _send_router(self, routing_id: bytes, payload: bytes) -> None:
        assert self.router is not None
        try:
            await _send(self.router, [routing_id, payload])
        except TransportError as exc:
            log.warning("send failed", error=str(exc))


async def _send(sock: ZmqSocket, frames: list[bytes]) -> None:
    """A cancellation point, but a schedule point only when the socket's buffer is full: a relay
    (the session actor forwarding a streamed answer) sends a run of messages per task switch."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        sock.send_nowait(frames)
    except trio.WouldBlock:
        await sock.send(frames)
