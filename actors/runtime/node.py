"""A node puts an actor system on the wire: one ROUTER for everyone who talks to us, one DEALER per
peer node we talk to, and (in wire mode) a loopback DEALER so even local traffic is encoded.

The ROUTER is the trust boundary. Only the loopback DEALER (whose routing id is a secret the node
made up) speaks for this daemon's actors there; every other connection is a client: its frames
must decode, be a client command for the actor that serves it (``protocol.bounds``) and keep every
field in bounds — else the client gets a ``Failure`` and no actor sees the frame. A client frame's
``sender`` is rewritten from the transport (``protocol.identity``), so replies go to the
connection that asked, whatever it claimed, and actors know which OS user is asking.
"""
from __future__ import annotations

import secrets
from collections import deque

import structlog
import trio
import zmq
from zmq.utils import z85

from protocol.bounds import OutOfBounds, check_bounds, forbidden_reason
from protocol.codec import MAX_FRAME_BYTES, Envelope, decode, encode, new_id, try_peek_header
from protocol.errors import FrameError
from protocol.identity import client_node, routing_id_of, uid_from_peer_address
from protocol.messages import Failure, Ping, Pong
from protocol.transport import TransportError, ZmqSocket, open_zmq_socket

from actors.remote.zap import CurveServer, run_zap_handler
from actors.runtime.kernel import ActorSystem
from actors.runtime.streams import ClientStreams

log = structlog.get_logger("node")

# ZeroMQ's default high-water mark (1,000 messages per peer) would silently drop events for a
# client that reads slowly — a long streamed answer is thousands of text.delta events. Queue
# generously instead: at ~150 bytes per event this bounds a stalled client at ~15 MB.
PEER_HWM = 100_000

# ZeroMQ cuts off a peer that announces a bigger frame before reading it into memory (a 1 GiB
# frame used to cost 2 GB of RSS). A little above the decoder's cap, so frames just over it still
# get a typed ``frame_too_large`` reply.
MAX_WIRE_BYTES = MAX_FRAME_BYTES + 1024 * 1024

# The name part a client may give its own address (``node/name``); anything else becomes "client".
_MAX_SENDER_NAME = 64

# Inbound messages for an actor whose mailbox is full wait in a per-actor backlog, so that one busy
# actor (the session actor relaying a hundred streams) cannot hold up the node's single inbound
# loop and with it every other actor (a client's liveness Ping to ``control``). Past this many
# waiting messages for one actor the loop waits after all: overload still pushes back on clients.
BACKLOG_LIMIT = 4096

# How many connections' client node names the node remembers (see Node._client_node).
_CLIENT_NODES_KEPT = 1024


class _Backlog:
    __slots__ = ("queue", "room")

    def __init__(self) -> None:
        self.queue: deque[Envelope] = deque()
        self.room: trio.Event | None = None


class Node:
    def __init__(self, system: ActorSystem, ctx: zmq.Context | None = None, curve: CurveServer | None = None,
                 *, answer_pings: bool = False):
        self.system = system
        # A client's ``Ping`` to ``control`` is answered right here on the inbound loop: it asks
        # whether the daemon's event loop and endpoint run, which this answer proves, and skips the
        # mailbox, the control actor's task switch and the kernel's reply routing (a third of the
        # daemon's cost of a Ping). Off for tests that stand in a control actor that never answers.
        self.answer_pings = answer_pings
        self.ctx = ctx or zmq.Context.instance()
        # CURVE on the ROUTER (a tcp endpoint beyond loopback): only allow-listed keys get in, and a
        # client's principal is its key. Needs a context of its own (one ZAP handler per context).
        self.curve = curve
        self.router: ZmqSocket | None = None
        self.loopback: ZmqSocket | None = None
        self.peers: dict[str, ZmqSocket] = {}
        self.endpoint: str | None = None
        self.bad_frames = 0          # did not decode
        self.forbidden_frames = 0    # a client sent an actor message, a reply, or to another node
        self.invalid_frames = 0      # a client command out of bounds
        self.streams = ClientStreams()
        self._ipc = False
        # Nobody else can present this routing id: it never leaves the process.
        self._loopback_identity = b"loop." + secrets.token_bytes(16)
        self._nursery: trio.Nursery | None = None
        self._backlogs: dict[str, _Backlog] = {}
        self._behind = False   # frames wait for the inbound loop: leave the rest to it (_dispatch)
        # _client_node's answers: a connection's frames all carry the same routing id, peer address
        # and key, and working the node out again (peer address parsing, z85) costs per frame.
        self._client_nodes: dict[tuple[bytes, str | None, str | None], str] = {}

    async def serve(self, bind: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Bind the ROUTER and route until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            options: dict[int, int | bytes] = {zmq.SNDHWM: PEER_HWM, zmq.MAXMSGSIZE: MAX_WIRE_BYTES}
            if self.curve is not None:
                await nursery.start(run_zap_handler, self.ctx, self.curve.policy)   # before anyone can connect
                options.update(self.curve.server_options())
            async with open_zmq_socket(self.ctx, zmq.ROUTER, bind=bind,
                                       options=options,
                                       receive_buffer=1024,
                                       send_buffer=1024,
                                       peer_address=True,
                                       park=self.streams) as router:
                self.router = router
                self.endpoint = router.last_endpoint or bind
                self._ipc = self.endpoint.startswith("ipc://")
                self.system.outbound = self._outbound
                if self.system.wire_mode:
                    await nursery.start(self._run_loopback)
                task_status.started(self.endpoint)
                router.set_dispatch(self._dispatch)
                try:
                    async for frames in router:
                        await self._on_router_frames(frames)
                        if not router.queued:
                            self._behind = False   # caught up: the owner may dispatch again
                finally:
                    self.system.outbound = None
                    nursery.cancel_scope.cancel()

    def _dispatch(self, frames: list[bytes]) -> bool:
        """A client's command handled by the ROUTER's owner task itself (``ZmqSocket.set_dispatch``)
        when that needs no waiting: checked as in ``_on_client_frame``, then put into its actor's
        mailbox (or a Ping answered), without the inbound loop's task switch. Anything else — a
        frame to refuse or answer with an error, the loopback's, a full mailbox, an actor with a
        backlog — goes to the loop, and so does everything after it until the loop has caught up,
        so every actor still gets its messages in the order the node received them."""
        if self._behind or not self._dispatch_one(frames):
            self._behind = True
            return False
        return True

    def _dispatch_one(self, frames: list[bytes]) -> bool:
        if len(frames) < 2 or frames[0] == self._loopback_identity:
            return False
        routing_id, peer, user = frames[0], getattr(frames, "peer", None), getattr(frames, "user", None)
        try:
            env = decode(frames[-1], lambda claimed: self._client_sender(claimed, routing_id, peer, user))
        except FrameError:
            return False
        if self._refusal(env, count=False) is not None:
            return False
        body = env.body
        name = env.recipient.rpartition("/")[2]
        if type(body) is Ping and self.answer_pings and name == "control":
            assert self.router is not None
            pong = Envelope(Pong(body.payload), env.sender, self.system.address("control"), new_id(), env.msg_id)
            try:
                self.router.send_nowait([frames[0], encode(pong)])
            except (trio.WouldBlock, TransportError):
                return False
            return True
        return name not in self._backlogs and self.system.try_deliver_local(env)

    async def _run_loopback(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        options = self.curve.own_client_options() if self.curve is not None else None
        async with open_zmq_socket(self.ctx, zmq.DEALER, connect=self.endpoint,
                                   identity=self._loopback_identity, options=options) as sock:
            self.loopback = sock
            task_status.started()
            async for frames in sock:  # replies to the loopback itself arrive here
                await self._on_dealer_frame(frames[-1])

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
                    await self._on_dealer_frame(frames[-1])
            finally:
                self.peers.pop(node_id, None)

    async def _on_router_frames(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            return
        routing_id, payload = frames[0], frames[-1]
        if routing_id == self._loopback_identity:
            await self._on_own_frame(payload)
        else:
            await self._on_client_frame(routing_id, payload, getattr(frames, "peer", None),
                                        getattr(frames, "user", None))

    async def _on_own_frame(self, payload: bytes) -> None:
        """Wire mode: an envelope one of our actors sent through the loopback."""
        try:
            env = decode(payload)
        except FrameError as exc:
            self.bad_frames += 1
            log.error("undecodable frame from the loopback", error=str(exc))
            return
        if self.system.is_local(env.recipient):
            await self._deliver_inbound(env)
        else:
            await self._outbound(env)

    async def _on_dealer_frame(self, payload: bytes) -> None:
        """A reply on a DEALER we opened (to a peer node, or the loopback): it is for us."""
        try:
            env = decode(payload)
        except FrameError as exc:
            self.bad_frames += 1
            log.warning("undecodable frame from a peer", error=str(exc))
            return
        name = env.recipient.rpartition("/")[2]
        await self._deliver_inbound(Envelope(env.body, name, env.sender, env.msg_id, env.correlation_id, env.version))

    async def _on_client_frame(self, routing_id: bytes, payload: bytes, peer: str | None,
                               user: str | None = None) -> None:
        try:
            env = decode(payload, lambda claimed: self._client_sender(claimed, routing_id, peer, user))
        except FrameError as exc:
            self.bad_frames += 1
            msg_id, _ = try_peek_header(payload)
            await self._answer_client(routing_id, f"{self._client_node(routing_id, peer, user)}/client", msg_id,
                                      Failure(exc.code, str(exc)))
            return
        refusal = self._refusal(env)
        if refusal is not None:
            if isinstance(env.body, Failure):
                return  # an error is never answered with an error: no ping-pong, ever
            await self._answer_client(routing_id, env.sender, env.msg_id, refusal)
            return
        body = env.body
        if type(body) is Ping and self.answer_pings and env.recipient.rpartition("/")[2] == "control":
            pong = Envelope(Pong(body.payload), env.sender, self.system.address("control"), new_id(), env.msg_id)
            await self._send_router(routing_id, encode(pong))
            return
        await self._deliver_inbound(env)

    def _client_node(self, routing_id: bytes, peer: str | None, user: str | None) -> str:
        known = self._client_nodes.get((routing_id, peer, user))
        if known is not None:
            return known
        uid = uid_from_peer_address(peer) if self._ipc else None
        key = z85.decode(user) if user and self.curve is not None and len(user) == 40 else None
        node = client_node(uid, routing_id, key)
        if len(self._client_nodes) >= _CLIENT_NODES_KEPT:
            self._client_nodes.clear()   # connections come and go: bounded, not evicted one by one
        self._client_nodes[(routing_id, peer, user)] = node
        return node

    def _client_sender(self, claimed: str, routing_id: bytes, peer: str | None, user: str | None) -> str:
        """The address a client's envelope is stamped with: its connection's, whatever it claimed."""
        name = claimed.rpartition("/")[2]
        if not name or len(name) > _MAX_SENDER_NAME:
            name = "client"
        return f"{self._client_node(routing_id, peer, user)}/{name}"

    def _refusal(self, env: Envelope, count: bool = True) -> Failure | None:
        """Why no actor may see this client envelope (None: deliver it); ``count`` it in the stats."""
        target, _, actor = env.recipient.rpartition("/")
        reason = None
        if env.correlation_id is not None:
            reason = "clients send commands, not replies"
        elif target and target != self.system.node_id:
            reason = "clients may address only this daemon's actors"
        else:
            reason = forbidden_reason(env.body, actor)
        if reason is not None:
            self.forbidden_frames += count
            return Failure("forbidden_message", reason)
        try:
            check_bounds(env.body)
        except OutOfBounds as exc:
            self.invalid_frames += count
            return Failure("invalid_message", str(exc)[:500])
        return None

    async def _answer_client(self, routing_id: bytes, recipient: str, msg_id: str | None, failure: Failure) -> None:
        if self.router is None:
            return
        reply = Envelope(failure, recipient, self.system.address("node"), new_id(), msg_id)
        await self._send_router(routing_id, encode(reply))

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

    async def _outbound(self, env: Envelope) -> None:
        node, _, _ = env.recipient.rpartition("/")
        routing_id = routing_id_of(node)
        if routing_id is not None:
            await self._send_client(routing_id, env)
            return
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
        log.warning("no route to node; dropping", recipient=env.recipient, body=type(env.body).__name__)

    async def _send_client(self, routing_id: bytes, env: Envelope) -> None:
        """Replies and events go to the connection the stamped address names (see ClientStreams for
        clients that stopped reading)."""
        if self.streams.needs_admit(env):
            for item in self.streams.admit(routing_id, env):
                await self._send_router(routing_id, encode(item))
            return
        await self._send_router(routing_id, encode(env))

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
