"""The Python client library: what the CLI itself uses to talk to the daemon.

    async with open_client() as client:
        session = await client.open_session()
        async with client.turn(session.session_id, "hello") as turn:
            async for event in turn:
                ...

One DEALER socket, owned by one task; replies are matched to requests by correlation id, turn
events are routed to the turn that asked for them. ``SyncClient`` wraps it for scripts.
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import socket
from typing import Any
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import trio
import zmq

from protocol import events as ev
from protocol.canonical import ImageBlock, ToolDefinition
from protocol.codec import Envelope, decode, encode, new_id
from protocol.errors import FrameError, RemoteError
from protocol.messages import (
    CancelTurn, ClearModel, EventNotice, Failure, GetCost, GetStatus, GetTrace, ModelState, OpenSession,
    LoopNotice, WatchLoops,
    Ping, ReloadRules, ResetAvailability, SessionInfo, SetModel, ShowModel, ShowRules, StartTurn,
    SubmitToolResult, TurnAccepted,
)
from protocol.transport import TransportError, ZmqSocket, monitor_event, open_zmq_socket

from actors.runtime.node import PEER_HWM

from .paths import resolve_paths

ToolHandler = Callable[[dict], Awaitable[str]]
LIVENESS_INTERVAL_S = 3.0
# How long the first Ping may take. Generous: a busy daemon (hundreds of clients connecting at
# once) answers late but answers; a missing or dead daemon is detected before any Ping (see
# _probe_ipc), so this bound only matters for a daemon that accepts connections and then hangs.
CONNECT_TIMEOUT_S = 15.0


class DaemonUnreachable(ConnectionError):
    """No daemon answered at the endpoint."""


# What a request or a turn gets instead of its reply or next event when the connection to the daemon
# dropped: the daemon is gone, and one that comes back has forgotten what it was asked.
_LOST = object()

# What the DEALER's monitor reports (see Client._watch_connection).
_MONITORED = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
              | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                     zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


# The reply of a request whose silence window passed (set by Client._keep_deadlines).
_EXPIRED = object()


class _Pending:
    """One request waiting for its reply (lighter than a memory channel per request)."""

    __slots__ = ("event", "reply", "deadline")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reply: Any = None
        self.deadline = math.inf   # when its silence window ends (trio clock)


class Client:
    def __init__(self, sock, endpoint: str):
        self._sock = sock
        self.endpoint = endpoint
        self.node_id = "c" + os.urandom(5).hex()
        self.address = f"{self.node_id}/client"
        self._pending: dict[str, _Pending] = {}
        self._sessions: dict[str, trio.MemorySendChannel] = {}
        self._loop_events: trio.MemorySendChannel | None = None   # `watch_loops`: LoopNotice events
        # Frames received from the daemon, ever: a daemon too busy to answer a Ping in time but
        # still sending (other turns' events, the late Pong) is alive, not lost.
        self.heard = 0
        self._loop_behind = False   # messages wait for the receive loop: leave the rest to it (_dispatch)
        # The DEALER's connection, from its monitor: None until it first connects, then True/False.
        self.connected: bool | None = None
        # Connections that dropped, ever: a turn that saw this change has lost its daemon.
        self.drops = 0
        self._loss_waits = False    # a drop waits for the receive loop to deliver what came before it
        self._refused = False       # the last connection ended in a failed handshake (CURVE keys)
        # One timer for all pending requests (_keep_deadlines): a cancel scope with a deadline per
        # request cost about as much as a task switch. _wake_at is when the keeper wakes next.
        self._wake_at = math.inf
        self._keeper: trio.CancelScope | None = None

    def _dispatch(self, frames: list[bytes]) -> bool:
        """What arrives, handled by the socket's owner task itself (``ZmqSocket.set_dispatch``): a
        reply wakes its requester, an event goes to its turn, with no task switch in between.
        False — the receive loop takes it — for an event whose turn's buffer is full, and for
        everything after that until the loop has caught up, so the order of messages holds."""
        if self._loop_behind:
            return False
        try:
            env = decode(frames[-1])
        except FrameError:
            self.heard += 1
            return True
        if not self._route(env):
            self._loop_behind = True
            return False
        self.heard += 1
        return True

    def _route(self, env: Envelope) -> bool:
        """Hand ``env`` on without waiting; False if its turn's event buffer is full."""
        if env.correlation_id and env.correlation_id in self._pending:
            pending = self._pending.pop(env.correlation_id)
            pending.reply = env.body
            pending.event.set()
        elif isinstance(env.body, LoopNotice):
            if self._loop_events is not None:
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                    self._loop_events.send_nowait(env.body.event)   # a slow watcher misses events
        elif isinstance(env.body, EventNotice):
            chan = self._sessions.get(env.body.session_id)
            if chan is not None:
                try:
                    chan.send_nowait(env.body.event)
                except trio.WouldBlock:
                    return False
        return True

    async def _receive_loop(self) -> None:
        async for frames in self._sock:
            self.heard += 1
            try:
                env = decode(frames[-1])
            except FrameError:
                env = None
            if env is not None and not self._route(env):
                # A full buffer (a slow consumer) makes us wait: that is the backpressure.
                assert isinstance(env.body, EventNotice)
                chan = self._sessions.get(env.body.session_id)
                if chan is not None:
                    await chan.send(env.body.event)
            if not self._sock.queued:
                self._loop_behind = False   # caught up: the owner may dispatch again
                if self._loss_waits:
                    self._loss_waits = False
                    self._fail_in_flight()

    async def _watch_connection(self, monitor: ZmqSocket) -> None:
        """Learn from the DEALER's monitor that the connection dropped (a daemon that stopped or
        died), and fail what waits for that daemon at once instead of after a timeout."""
        async for frames in monitor:
            event = monitor_event(frames)
            if event == zmq.EVENT_CONNECTED:
                self.connected = True
                self._refused = False
            elif event in _HANDSHAKE_FAILED:
                self._refused = True   # the drop that follows is a refusal, not a daemon gone
            elif event == zmq.EVENT_DISCONNECTED:
                self.connected = False
                # What the daemon sent before it went is still inside ZeroMQ (the monitor is a
                # socket of its own): it reaches its requests and turns first.
                await self._sock.settle()
                if self._loop_behind:
                    self._loss_waits = True
                else:
                    self._fail_in_flight()

    async def _keep_deadlines(self) -> None:
        """Expire the requests whose silence window passed. Sleeps until the earliest deadline it
        knows of; a request due earlier moves that wake-up (``_arm``). Requests of one window come
        due in the order they were sent, so a run of them costs no re-arming at all."""
        while True:
            with trio.CancelScope(deadline=self._wake_at) as self._keeper:
                await trio.sleep_forever()
            self._keeper = None
            now = trio.current_time()
            wake_at = math.inf
            for pending in self._pending.values():
                if pending.deadline <= now:
                    pending.deadline = math.inf
                    pending.reply = _EXPIRED
                    pending.event.set()
                elif pending.deadline < wake_at:
                    wake_at = pending.deadline
            self._wake_at = wake_at

    def _arm(self, deadline: float) -> None:
        if deadline < self._wake_at:
            self._wake_at = deadline
            if self._keeper is not None:
                self._keeper.deadline = deadline

    def _fail_in_flight(self) -> None:
        """The connection dropped: every request waiting for a reply, and every turn waiting for
        events, is told now, after everything that arrived before the drop."""
        self.drops += 1
        pending, self._pending = self._pending, {}
        for waiting in pending.values():
            waiting.reply = _LOST
            waiting.event.set()
        for chan in self._sessions.values():
            # A full buffer has nothing waiting on it: its turn sees ``drops`` once it drained.
            with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                chan.send_nowait(_LOST)

    async def request(self, actor: str, body: Any, *, timeout: float = 30.0) -> Any:
        """Send a command to a daemon actor; a ``Failure`` reply raises ``RemoteError``.

        ``timeout`` bounds silence, not the wait: when it passes without the reply, the daemon is
        pinged (bounded by ``timeout`` too) and, if it answers, the request stays pending. A busy
        daemon under load answers late; only one that stopped answering is reported. A connection
        that drops (the daemon stopped or died) fails the request at once, whatever ``timeout``.
        """
        if self.connected is False:
            raise DaemonUnreachable(self._lost_message())
        env = Envelope(body, actor, self.address, new_id())
        pending = self._pending[env.msg_id] = _Pending()
        window = timeout if math.isfinite(timeout) else math.inf
        try:
            frames = [encode(env)]
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                self._sock.send_nowait(frames)  # no schedule point: we wait for the reply next
            except trio.WouldBlock:
                # Only a full send buffer needs a deadline (a cancel scope per request is not free).
                with trio.fail_after(window):
                    await self._sock.send(frames)
            while True:
                heard = self.heard
                if window != math.inf:
                    pending.deadline = trio.current_time() + window
                    self._arm(pending.deadline)
                await pending.event.wait()
                if pending.reply is not _EXPIRED:
                    break
                pending.reply, pending.event = None, trio.Event()   # still pending: the reply may come
                if isinstance(body, Ping):
                    raise trio.TooSlowError
                await self.check_alive(window, heard)  # alive: keep waiting for the (late) reply
            reply = pending.reply
        except trio.TooSlowError:
            if pending.reply is _LOST:   # dropped while the liveness Ping was out
                raise DaemonUnreachable(self._lost_message()) from None
            raise DaemonUnreachable(f"no answer from the daemon at {self.endpoint} within {timeout:g}s") from None
        finally:
            self._pending.pop(env.msg_id, None)
        if reply is _LOST:
            raise DaemonUnreachable(self._lost_message())
        if isinstance(reply, Failure):
            raise RemoteError(reply.code, reply.message, reply.details)
        return reply

    def _lost_message(self) -> str:
        if self._refused:
            return (f"the daemon at {self.endpoint} refused this client's handshake "
                    f"(a CURVE key it does not allow, or none: {CLIENT_KEY_VAR} / {SERVER_KEY_VAR})")
        return f"lost the daemon at {self.endpoint} (the connection dropped)"

    async def check_alive(self, timeout: float, heard: int) -> None:
        """Return if the daemon answers a Ping within ``timeout`` or has sent anything since
        ``heard`` (a value of ``self.heard``); raise trio.TooSlowError if it stayed silent, or at
        once while the connection is down."""
        if self.connected is False:
            raise trio.TooSlowError
        try:
            await self.request("control", Ping(), timeout=timeout)
        except DaemonUnreachable:
            if self.heard == heard:
                raise trio.TooSlowError from None

    async def ping(self, timeout: float = 2.0) -> None:
        await self.request("control", Ping(), timeout=timeout)

    # --- sessions and turns ------------------------------------------------------------------------

    async def open_session(self, session_id: str | None = None, workspace: str | None = None) -> SessionInfo:
        return await self.request("session", OpenSession(session_id, workspace))

    @contextlib.asynccontextmanager
    async def turn(self, session_id: str, text: str, *, images: tuple[ImageBlock, ...] = (),
                   tools: dict[str, tuple[ToolDefinition, ToolHandler]] | None = None,
                   workspace: str | None = None, role: str | None = None,
                   tier: str | None = None, effort: str | None = None,
                   trace_notes: tuple[str, ...] = ()) -> AsyncIterator[TurnHandle]:
        """Start a turn; iterate the handle for its events. Client tools are answered automatically.

        ``role`` (and its complexity ``tier``) dispatches by role (roles.yaml, DESIGN §4.8).
        ``effort``: the reasoning effort asked for (dropped, with a note in route.decided, when the
        chosen model does not declare it); ``trace_notes``: lines for the turn's route.decided."""
        send, recv = trio.open_memory_channel[Any](4096)
        if session_id in self._sessions:
            raise RuntimeError(f"this client already follows a turn of session {session_id}")
        self._sessions[session_id] = send
        try:
            defs = tuple(d for d, _ in (tools or {}).values())
            accepted: TurnAccepted = await self.request(
                "session", StartTurn(session_id, text, images, defs, workspace, role=role, tier=tier,
                                     effort=effort, trace_notes=tuple(trace_notes)))
            yield TurnHandle(self, accepted.session_id, accepted.turn_id, recv, tools or {})
        finally:
            self._sessions.pop(session_id, None)

    async def cancel(self, session_id: str, turn_id: str | None = None) -> None:
        await self.request("session", CancelTurn(session_id, turn_id))

    # --- commands ------------------------------------------------------------------------------------

    async def set_model(self, session_id: str, model: str) -> ModelState:
        return await self.request("session", SetModel(session_id, model))

    async def clear_model(self, session_id: str) -> ModelState:
        return await self.request("session", ClearModel(session_id))

    async def show_model(self, session_id: str) -> ModelState:
        return await self.request("session", ShowModel(session_id))

    async def status(self):
        return await self.request("control", GetStatus())

    async def trace(self, turn_id: str):
        return await self.request("control", GetTrace(turn_id))

    async def cost(self, session_id: str | None = None):
        return await self.request("cost", GetCost(session_id))

    async def rules(self, workspace: str | None = None):
        return await self.request("router", ShowRules(workspace))

    async def reload_rules(self):
        return await self.request("router", ReloadRules())

    async def reset_availability(self, scope: str):
        return await self.request("availability", ResetAvailability(scope))

    @contextlib.asynccontextmanager
    async def watch_loops(self, loop_id: str | None = None) -> AsyncIterator[trio.MemoryReceiveChannel]:
        """Loop events (``loop.tick_started``, ``loop.tick_finished``, ``loop.stopped``) as dicts, of
        one loop or of all, for as long as the context is open."""
        send, recv = trio.open_memory_channel[dict](1024)
        self._loop_events = send
        try:
            await self.request("loops", WatchLoops(loop_id))
            yield recv
        finally:
            self._loop_events = None


class TurnHandle:
    def __init__(self, client: Client, session_id: str, turn_id: str, events: trio.MemoryReceiveChannel,
                 tools: dict[str, tuple[ToolDefinition, ToolHandler]]):
        self.client = client
        self.session_id = session_id
        self.turn_id = turn_id
        self._events = events
        self._tools = tools
        self._unanswered: ev.ToolCalled | None = None
        self.terminal: Any = None
        self._drops = client.drops   # the connection this turn was started on

    def __aiter__(self) -> TurnHandle:
        return self

    async def __anext__(self):
        """The next event of this turn; ends after the terminal event. A client tool call that was
        just handed out is answered before the next event is awaited."""
        if self._unanswered is not None:
            call, self._unanswered = self._unanswered, None
            await self._answer_tool(call)
        if self.terminal is not None:
            raise StopAsyncIteration
        while True:
            event = None
            # Fast path: an event is already buffered (a streaming answer), so no liveness timer is
            # needed; still a cancellation point (Ctrl-C cancels the turn through it).
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                event = self._events.receive_nowait()
            except trio.WouldBlock:
                heard = self.client.heard
                with trio.move_on_after(LIVENESS_INTERVAL_S):
                    try:
                        event = await self._events.receive()
                    except trio.EndOfChannel:
                        raise StopAsyncIteration from None
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
            if event is _LOST:
                raise self._lost()
            if event is None:
                # Quiet for a while: a long tool run, or a daemon that hangs (a dead one drops the
                # connection, which ends the wait sooner). A ping tells the two apart.
                if self.client.drops != self._drops:
                    raise self._lost()   # the daemon went away and whatever answers now forgot us
                try:
                    await self.client.check_alive(LIVENESS_INTERVAL_S, heard)
                except trio.TooSlowError:
                    raise self._lost() from None
                continue
            if getattr(event, "turn_id", self.turn_id) in (self.turn_id, None):
                break
        if isinstance(event, ev.ToolCalled) and event.client_tool:
            self._unanswered = event
        if isinstance(event, ev.TERMINAL_EVENT_TYPES):
            self.terminal = event
        return event

    def _lost(self) -> DaemonUnreachable:
        return DaemonUnreachable(f"lost the daemon during turn {self.turn_id}")

    async def _answer_tool(self, call: ev.ToolCalled) -> None:
        entry = self._tools.get(call.name)
        if entry is None:
            content, is_error = f"client has no tool named {call.name}", True
        else:
            try:
                content, is_error = await entry[1](call.input), False
            except Exception as exc:  # the tool's failure is the model's information, not ours
                content, is_error = f"{type(exc).__name__}: {exc}", True
        await self.client.request("session", SubmitToolResult(self.session_id, self.turn_id, call.tool_use_id,
                                                               content, is_error))

    async def cancel(self) -> None:
        await self.client.cancel(self.session_id, self.turn_id)


def _probe_ipc(path: str) -> None:
    """Fail at once when nobody listens on the socket file (missing, or left behind by a dead
    daemon): then no Ping could ever be answered, and waiting for one would only delay the error."""
    if not os.path.exists(path):
        raise DaemonUnreachable(f"no daemon socket at {path}")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except (BlockingIOError, InterruptedError):
        pass  # a full listen backlog: the daemon is there, only busy
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
            raise DaemonUnreachable(f"nobody is listening on {path} (a stale socket file?)") from None
        if exc.errno != errno.EAGAIN:
            raise DaemonUnreachable(f"cannot connect to {path}: {exc.strerror}") from None
    finally:
        probe.close()


def _connect_timeout() -> float:
    try:
        value = float(os.environ.get("ORCHESTRATOR_CONNECT_TIMEOUT", CONNECT_TIMEOUT_S))
    except ValueError:
        return CONNECT_TIMEOUT_S
    return value if math.isfinite(value) and value > 0 else CONNECT_TIMEOUT_S


@contextlib.asynccontextmanager
async def open_client(endpoint: str | None = None, *, check: bool = True,
                      timeout: float | None = None) -> AsyncIterator[Client]:
    """Connect to the daemon; with ``check``, fail with DaemonUnreachable if nobody answers a Ping
    within ``timeout`` (default CONNECT_TIMEOUT_S, or $ORCHESTRATOR_CONNECT_TIMEOUT)."""
    endpoint = endpoint or resolve_paths().endpoint
    if endpoint.startswith("ipc://"):
        _probe_ipc(endpoint[len("ipc://"):])
    timeout = _connect_timeout() if timeout is None else timeout
    ctx: zmq.Context = zmq.Context.instance()
    options: dict[int, int | bytes] = {zmq.RCVHWM: PEER_HWM}
    if endpoint.startswith("tcp://"):
        options.update(curve_client_options(os.environ))
    try:
        async with open_zmq_socket(ctx, zmq.DEALER, connect=endpoint, options=options,
                                   monitor=_MONITORED) as sock:
            client = Client(sock, endpoint)
            sock.set_dispatch(client._dispatch)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client._receive_loop)
                nursery.start_soon(client._keep_deadlines)
                assert sock.monitor is not None
                nursery.start_soon(client._watch_connection, sock.monitor)
                if check:
                    await client.ping(timeout)
                yield client
                nursery.cancel_scope.cancel()
    except TransportError as exc:
        raise DaemonUnreachable(str(exc)) from None
    except BaseExceptionGroup as group:
        # The receive loop's nursery wraps errors; callers should see the one that matters.
        leaves = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
        if leaves and all(isinstance(e, (DaemonUnreachable, TransportError)) for e in leaves):
            first = leaves[0]
            raise (first if isinstance(first, DaemonUnreachable) else DaemonUnreachable(str(first))) from None
        raise


CLIENT_KEY_VAR = "ORCHESTRATOR_CLIENT_KEY"
SERVER_KEY_VAR = "ORCHESTRATOR_SERVER_KEY"


def curve_client_options(env: Mapping[str, str]) -> dict[int, int | bytes]:
    """CURVE for a tcp endpoint whose daemon has ``curve:`` (docs/remote-workers.md): this client's key
    pair from ``$ORCHESTRATOR_CLIENT_KEY`` (a key file), the daemon's public key from
    ``$ORCHESTRATOR_SERVER_KEY`` (Z85 or a key file). Neither set: a plain connection."""
    client_file = env.get(CLIENT_KEY_VAR)
    if not client_file:
        return {}
    from actors.remote.keys import KeyFileError, public_key, read_key_file
    from actors.remote.zap import curve_client_options as options

    from .paths import EndpointRefused   # a setting to fix (exit 1), not a daemon to start (exit 3)

    server = env.get(SERVER_KEY_VAR)
    if not server:
        raise EndpointRefused(f"{CLIENT_KEY_VAR} is set but {SERVER_KEY_VAR} (the daemon's public key) is not")
    try:
        pair = read_key_file(Path(client_file).expanduser(), need_secret=True)
        server_public = public_key(server)
    except KeyFileError as exc:
        raise EndpointRefused(f"{exc} ({CLIENT_KEY_VAR} / {SERVER_KEY_VAR})") from None
    assert pair.secret is not None
    return options(server_public, pair.public, pair.secret)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


class SyncClient:
    """Blocking helpers for scripts: each call connects, does one thing and disconnects."""

    def __init__(self, endpoint: str | None = None):
        self.endpoint = endpoint

    def _run(self, fn):
        async def main():
            async with open_client(self.endpoint) as client:
                return await fn(client)
        return trio.run(main)

    def ask(self, text: str, session_id: str | None = None, workspace: str | None = None, *,
            role: str | None = None, tier: str | None = None) -> tuple[str, list]:
        """Run one turn (by ``role`` at ``tier`` when given); returns (answer text, all events)."""
        async def go(client: Client):
            info = await client.open_session(session_id, workspace)
            events, text_parts = [], []
            async with client.turn(info.session_id, text, role=role, tier=tier) as turn:
                async for e in turn:
                    events.append(e)
                    if isinstance(e, ev.TextDelta):
                        text_parts.append(e.text)
            return "".join(text_parts), events
        return self._run(go)

    def status(self):
        return self._run(lambda c: c.status())

    def cost(self, session_id: str | None = None):
        return self._run(lambda c: c.cost(session_id))

    def set_model(self, session_id: str, model: str):
        return self._run(lambda c: c.set_model(session_id, model))
