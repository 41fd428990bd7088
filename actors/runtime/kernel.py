"""The actor kernel: addressing, bounded mailboxes, tell / request-reply, failures as data.

An address is ``"name"`` (this node) or ``"node/name"``. Delivery to a local actor skips
serialization unless the system is in *wire mode*, where every envelope is encoded and sent
through a transport (ZeroMQ + msgpack) even between two actors of this process — the end-to-end
tests run once that way to prove every inter-actor message survives the wire.
"""
from __future__ import annotations

import heapq
import math
import os
import time
from typing import Any, TypeVar
from collections.abc import Awaitable, Callable

import structlog
import trio

from protocol.codec import Envelope, new_id
from protocol.errors import RemoteError
from protocol.messages import ActorStatus, Failure, GetActorStatus

log = structlog.get_logger("kernel")

T = TypeVar("T")

MAILBOX_SIZE = 512
REPLY_BOX = "_reply"


class ActorNotFound(LookupError):
    pass


class RequestTimeout(TimeoutError):
    pass


class _Pending:
    __slots__ = ("event", "reply", "closed")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reply: Envelope | None = None
        self.closed = False   # the request has returned or failed: nothing may wake it any more


_COMPACT_MIN = 4096   # deadlines kept before answered requests are dropped from the heap


class _Deadlines:
    """Wakes local requests whose stall window ran out: one trio system task per run and a heap
    of deadlines, instead of a cancel scope per request (entering and leaving a trio cancel scope
    costs more than the rest of a local request). A woken request finds no reply and checks
    whether its recipient still makes progress (``_Watch``)."""

    __slots__ = ("heap", "seq", "token", "scope", "compact_at")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, _Pending, trio.Event]] = []
        self.seq = 0
        self.compact_at = _COMPACT_MIN
        self.token: trio.lowlevel.TrioToken | None = None
        self.scope: trio.CancelScope | None = None   # the waker's sleep, ending at the earliest deadline

    def add(self, pending: _Pending, at: float) -> bool:
        """Wake ``pending`` at ``at`` unless answered by then; False if no waker can run (the
        trio run is shutting down): then the caller bounds its wait itself."""
        token = trio.lowlevel.current_trio_token()
        if token is not self.token:   # the first request of this trio run: start its waker
            fresh: list[tuple[float, int, _Pending, trio.Event]] = []
            try:
                trio.lowlevel.spawn_system_task(self._wake, fresh, name="kernel request deadlines")
            except RuntimeError:
                return False
            self.token, self.heap, self.scope = token, fresh, None
        self.seq += 1
        heap = self.heap
        if len(heap) >= self.compact_at:   # answered requests wait in the heap until their deadline
            heap[:] = [entry for entry in heap if not entry[2].closed]
            heapq.heapify(heap)
            self.compact_at = max(_COMPACT_MIN, 2 * len(heap))
        heapq.heappush(heap, (at, self.seq, pending, pending.event))
        if self.scope is not None and at < self.scope.deadline:
            self.scope.deadline = at
        return True

    async def _wake(self, heap: list[tuple[float, int, _Pending, trio.Event]]) -> None:
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                if heap is self.heap:
                    self.scope = scope
                await trio.sleep_forever()
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, pending, event = heapq.heappop(heap)
                if not pending.closed and pending.reply is None and pending.event is event:
                    event.set()


class ActorSystem:
    """Routes envelopes to local mailboxes, pending requests, or the wire."""

    def __init__(self, node_id: str | None = None, *, wire_mode: bool = False):
        self.node_id = node_id or f"n{os.getpid():x}{os.urandom(3).hex()}"
        self.wire_mode = wire_mode
        self._mailboxes: dict[str, trio.MemorySendChannel] = {}
        self._receivers: dict[str, trio.MemoryReceiveChannel] = {}
        self._pending: dict[str, _Pending] = {}
        # Each actor's message loop, to see whether it sits idle (see _deliver_to).
        self._drains: dict[str, _Drain] = {}
        # Per actor name: is its loop running, how many messages has it taken (request deadlines).
        self._liveness: dict[str, _Liveness] = {}
        self._deadlines = _Deadlines()
        # The newest message of a kind published to an actor (see ``publish``): (name, type) → body.
        self._latest: dict[tuple[str, type], Any] = {}
        # Set by the node that owns the sockets; takes an envelope bound for another node (or for
        # this node in wire mode) and puts it on the wire.
        self.outbound: Callable[[Envelope], Awaitable[None]] | None = None

    # --- addressing ----------------------------------------------------------------------------

    def address(self, name: str) -> str:
        return f"{self.node_id}/{name}"

    def _split(self, address: str) -> tuple[str | None, str]:
        node, sep, name = address.rpartition("/")
        return (node if sep else None), name

    def is_local(self, address: str) -> bool:
        node, _ = self._split(address)
        return node is None or node == self.node_id

    # --- mailboxes -------------------------------------------------------------------------------

    def mailbox(self, name: str, size: int = MAILBOX_SIZE) -> trio.MemoryReceiveChannel:
        """The receive side of ``name``'s mailbox; it outlives actor restarts so nothing queued is lost."""
        if name not in self._mailboxes:
            send, recv = trio.open_memory_channel[Envelope](size)
            self._mailboxes[name] = send
            self._receivers[name] = recv
        return self._receivers[name]

    def has_actor(self, name: str) -> bool:
        return name in self._mailboxes

    def settled(self, address: str) -> bool:
        """Whether the local actor at ``address`` has handled every message delivered to it so far
        to the end: its loop waits for mail and has taken everything delivered. (Work it spawned
        may still run.) A sender that delivered a message before this holds knows its effect is done."""
        node, sep, name = address.rpartition("/")
        if sep and node != self.node_id:
            return False
        drain = self._drains.get(name)
        return (drain is not None and drain.live.running and drain.parked_since != 0.0
                and drain.live.taken == drain.live.delivered)

    # --- sending ---------------------------------------------------------------------------------

    def publish(self, recipient: str, body: Any) -> bool:
        """Replace the newest message of ``body``'s kind published to the local actor ``recipient``
        (a one-slot mailbox that keeps only the latest value: no queue, no task switch; the
        recipient reads it with ``latest`` when it needs it). False when ``recipient`` is on another
        node or the system is in wire mode: nothing was published, the sender's state has to be
        asked for with a request instead."""
        node, sep, name = recipient.rpartition("/")
        if self.wire_mode or (sep and node != self.node_id):
            return False
        self._latest[(name, type(body))] = body
        return True

    def latest(self, name: str, kind: type[T]) -> T | None:
        """The newest ``kind`` published to the local actor ``name``, if any (see ``publish``)."""
        return self._latest.get((name, kind))

    async def tell(self, recipient: str, body: Any, *, sender: str = "", correlation_id: str | None = None,
                   hand_over: bool = True) -> None:
        """Deliver ``body``; ``hand_over=False`` when the sender has nothing the recipient waits
        for and goes on (or ends) anyway: then an idle recipient is not run first (see ``deliver``)."""
        await self.deliver(Envelope(body, recipient, sender, new_id(), correlation_id), hand_over=hand_over)

    async def reply(self, request: Envelope, body: Any, *, sender: str = "") -> None:
        if not request.sender:
            return  # a tell: nobody waits
        await self.deliver(Envelope(body, request.sender, sender, new_id(), request.msg_id))

    async def request(self, recipient: str, body: Any, *, timeout: float = 30.0, sender_name: str = REPLY_BOX) -> Any:
        """Send ``body`` and wait for the correlated reply; a ``Failure`` reply raises RemoteError.

        ``timeout`` bounds a *stall*, not the wait: for an actor of this node the request stays
        pending while the recipient runs and works through the messages queued ahead of it, and
        fails once the recipient stops running, takes nothing for ``timeout`` seconds, or spends
        longer than that on this request itself. Under load a deep queue is slow, not lost; a dead
        or hung actor is still reported. (An actor of another node cannot be observed: there the
        bound is fixed.)
        """
        env = Envelope(body, recipient, self.address(sender_name), new_id())
        pending = self._pending[env.msg_id] = _Pending()
        window = timeout if timeout and math.isfinite(timeout) else math.inf
        watch = _Watch(self, recipient)
        delivered = False
        try:
            watch.before_delivery()
            if watch.live is not None and not self.wire_mode and self.try_deliver_local(env):
                # A local actor with room in its mailbox (the usual case): delivered without
                # waiting; the wait ends with the reply or a stall window (see _Deadlines).
                await self._wait_reply(pending, watch, recipient, timeout, window)
            while pending.reply is None:
                with trio.move_on_after(window) as scope:
                    if not delivered:
                        watch.before_delivery()
                        # No hand-over: waiting for the reply is the schedule point that lets the
                        # recipient run (a hand-over would switch tasks once more for nothing).
                        await self.deliver(env, hand_over=False)
                        delivered = True
                    await pending.event.wait()
                if not scope.cancelled_caught:
                    break
                if (why := watch.stalled(delivered)) is not None:
                    raise RequestTimeout(f"no reply from {recipient}: {why} (waited {timeout:g}s without progress)")
        finally:
            pending.closed = True
            self._pending.pop(env.msg_id, None)
        assert pending.reply is not None
        result = pending.reply.body
        pending.reply = None   # a waker's heap may hold this request until its deadline: not the reply
        if isinstance(result, Failure):
            raise RemoteError(result.code, result.message, result.details)
        return result

    async def _wait_reply(self, pending: _Pending, watch: _Watch, recipient: str, timeout: float,
                          window: float) -> None:
        while True:
            if window == math.inf or self._deadlines.add(pending, trio.current_time() + window):
                await pending.event.wait()
            else:
                with trio.move_on_after(window):
                    await pending.event.wait()
            if pending.reply is not None:
                return
            if (why := watch.stalled(True)) is not None:
                raise RequestTimeout(f"no reply from {recipient}: {why} (waited {timeout:g}s without progress)")
            pending.event = trio.Event()

    async def tell_patiently(self, recipient: str, body: Any, *, sender: str = "", stall_s: float = 5.0,
                             hand_over: bool = True) -> bool:
        """``tell``, waiting for room in the recipient's mailbox as long as it runs and takes
        messages (see ``request``); False if it stopped or took nothing for ``stall_s`` seconds.
        For messages that must not be lost to a busy recipient (a turn's outcome, a ledger row)."""
        env = Envelope(body, recipient, sender, new_id())
        watch = _Watch(self, recipient)
        if watch.live is not None and not self.wire_mode:
            # A local mailbox with room (the usual case): delivered at once, no stall window to arm.
            await trio.lowlevel.checkpoint_if_cancelled()
            if self.try_deliver_local(env):
                if hand_over:
                    await self._hand_over(recipient.rpartition("/")[2])
                return True
        watch.before_delivery()
        while True:
            with trio.move_on_after(stall_s):
                await self.deliver(env, hand_over=hand_over)
                return True
            if watch.stalled(False) is not None:
                return False

    def liveness(self, name: str) -> _Liveness:
        """How far ``name``'s message loop has got: kept across restarts of the actor."""
        live = self._liveness.get(name)
        if live is None:
            live = self._liveness[name] = _Liveness()
        return live

    async def deliver(self, env: Envelope, *, hand_over: bool = True) -> None:
        """Route one envelope. Local delivery awaits mailbox space: that is the backpressure.

        ``hand_over``: a recipient that sat idle runs before the sender goes on (see _deliver_to)."""
        node, sep, name = env.recipient.rpartition("/")
        local = not sep or node == self.node_id
        if not local or self.wire_mode:
            if self.outbound is not None:
                await self.outbound(env)
                return
            if not local:
                raise ActorNotFound(f"no route to {env.recipient}")
        await self._deliver_to(env, name, hand_over)

    async def deliver_local(self, env: Envelope) -> None:
        await self._deliver_to(env, env.recipient.rpartition("/")[2])

    def try_deliver_local(self, env: Envelope) -> bool:
        """Deliver at once if that needs no waiting: a reply someone awaits, or a mailbox with room.

        False means "use ``deliver_local``" (the mailbox is full, or the actor is unknown and the
        sender must get a ``Failure``); nothing has happened then.
        """
        if env.correlation_id is not None:
            pending = self._pending.get(env.correlation_id)
            if pending is not None:
                pending.reply = env
                pending.event.set()
                return True
        box = self._mailboxes.get(env.recipient.rpartition("/")[2])
        if box is None:
            return False
        try:
            box.send_nowait(env)
        except trio.WouldBlock:
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return True  # shutting down
        self._count_delivery(env.recipient.rpartition("/")[2])
        return True

    def _count_delivery(self, name: str) -> None:
        live = self._liveness.get(name)
        if live is not None:
            live.delivered += 1

    async def _deliver_to(self, env: Envelope, name: str, hand_over: bool = True) -> None:
        if env.correlation_id is not None:
            pending = self._pending.get(env.correlation_id)
            if pending is not None:
                pending.reply = env
                pending.event.set()
                return
        box = self._mailboxes.get(name)
        if box is None:
            if name == REPLY_BOX:
                return  # a late reply to a request that already timed out
            if env.sender and not is_reply(env):  # never answer a reply, not even with an error
                await self.deliver(Envelope(Failure("unknown_actor", f"no actor named {name!r}"),
                                            env.sender, self.address(name), new_id(), env.msg_id))
            return
        # Always a cancellation point, but a schedule point only when the recipient has been idle
        # a while: then it should run now (the first token of an answer goes straight out), while a
        # producer feeding a busy recipient goes on and hands over a run of messages per task switch
        # (a streamed answer's chunks) instead of one. A full mailbox still makes the sender wait,
        # which is the backpressure.
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            try:
                box.send_nowait(env)
            except trio.WouldBlock:
                await box.send(env)
                self._count_delivery(name)
                return
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return  # shutting down
        self._count_delivery(name)
        if hand_over:
            await self._hand_over(name)

    async def _hand_over(self, name: str) -> None:
        drain = self._drains.get(name)
        if drain is not None and drain.parked_since and time.perf_counter() - drain.parked_since > IDLE_S:
            await trio.lowlevel.cancel_shielded_checkpoint()


class _Liveness:
    __slots__ = ("running", "taken", "delivered")

    def __init__(self) -> None:
        self.running = False
        self.taken = 0       # messages its loop has taken from the mailbox, ever
        self.delivered = 0   # messages put into its mailbox, ever


class _Watch:
    """Whether a request's recipient is still making progress towards the request (see ``request``)."""

    __slots__ = ("live", "position", "last_taken", "own_turn_seen")

    def __init__(self, system: ActorSystem, recipient: str):
        node, sep, name = recipient.rpartition("/")
        local = not sep or node == system.node_id
        self.live = system.liveness(name) if local and name in system._mailboxes else None
        self.position = 0
        self.last_taken = 0
        self.own_turn_seen = False

    def before_delivery(self) -> None:
        if self.live is not None:
            # Our message is taken once the loop has taken everything delivered ahead of it.
            self.position = self.live.delivered
            self.last_taken = self.live.taken

    def stalled(self, delivered: bool) -> str | None:
        """None to wait one more window; otherwise why the request has failed."""
        live = self.live
        if live is None:
            return "no answer"
        if not live.running:
            return "it is not running"
        taken = live.taken
        if delivered and taken > self.position:
            if self.own_turn_seen:
                return "it is still busy with this request"
            self.own_turn_seen = True  # taken within this window: give its handler a window too
            return None
        if taken == self.last_taken:
            return "it took no message"
        self.last_taken = taken
        return None


# An actor that finds messages waiting takes them without a task switch each (a streamed answer
# arrives as a run of small messages), but still yields once per this many.
_YIELD_EVERY = 32
# A recipient idle for longer than this is woken at once by a sender's schedule point.
IDLE_S = 0.0005
# Bounds the error reply to a request whose handler was cancelled because its actor went down.
STOPPING_REPLY_S = 1.0


class _Drain:
    """``async for env in inbox``, with a schedule point only per run of waiting messages.

    Every message is still a cancellation point, and a cancelled receive consumes nothing. (A
    class, not an async generator: an actor that crashes mid-loop leaves no generator to finalize.)
    """

    __slots__ = ("inbox", "unyielded", "parked_since", "live")

    def __init__(self, inbox: trio.MemoryReceiveChannel, live: _Liveness | None = None):
        self.inbox = inbox
        self.live = live if live is not None else _Liveness()
        self.unyielded = 0
        self.parked_since = 0.0  # perf_counter() when it started waiting for mail; 0 while busy

    def __aiter__(self) -> _Drain:
        return self

    async def __anext__(self) -> Envelope:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            env = self.inbox.receive_nowait()
        except trio.WouldBlock:
            self.parked_since = time.perf_counter()
            try:
                env = await self.inbox.receive()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
            finally:
                self.parked_since = 0.0
            self.unyielded = 0
            self.live.taken += 1
            return env
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        self.live.taken += 1
        self.unyielded += 1
        if self.unyielded >= _YIELD_EVERY:
            self.unyielded = 0
            await trio.lowlevel.cancel_shielded_checkpoint()
        return env


class Actor:
    """A thin message loop: ``handlers`` maps a message class to ``async def (env) -> reply | None``.

    A handler that raises answers *that* request with a ``Failure`` (the exception's own
    ``failure_code`` if it has one, e.g. ``storage_error``, else ``internal_error``), is logged in
    one line and counted as a fault; the loop goes on. A handler's bug must not cancel work it does
    not own (other sessions' turns live in this actor's nursery), nor spend the supervisor's
    restart budget. Only an exception outside
    the handlers (a background task started with ``nursery.start_soon`` that raises) ends the
    actor and lets the supervisor restart it; background work started with ``spawn`` is guarded
    like a handler.

    A message that is itself a reply (a ``Failure``, or any envelope carrying a correlation id)
    is never answered: a spoofed sender must not start an error ping-pong between two actors.
    """

    name: str = "actor"

    def __init__(self, system: ActorSystem):
        self.system = system
        self.log = log.bind(actor=self.name)
        self.handled = 0
        self.faults = 0
        self.dropped = 0          # unsolicited replies and failures: logged, counted, never answered
        self.last_fault: str | None = None
        self.table: dict[type, Callable[[Envelope], Awaitable[Any]]] = {}
        self._nursery: trio.Nursery | None = None

    def handlers(self) -> dict[type, Callable[[Envelope], Awaitable[Any]]]:
        return {}

    async def setup(self, nursery: trio.Nursery) -> None:
        """Start background work that lives as long as the actor."""

    def status_record(self) -> ActorStatus:
        return ActorStatus(self.name, self.handled, self.faults, self.dropped, self.last_fault)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self.table:  # built once: a restart keeps the table (and any entry a test added)
            self.table = {GetActorStatus: self._on_actor_status, **self.handlers()}
        inbox = self.system.mailbox(self.name)
        live = self.system.liveness(self.name)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.setup(nursery)
                task_status.started()
                live.running = True
                drain = self.system._drains[self.name] = _Drain(inbox, live)
                async for env in drain:
                    await self._handle(env)
        finally:
            live.running = False

    async def _handle(self, env: Envelope) -> None:
        self.handled += 1
        if is_reply(env):
            # Nobody here asked: a late reply, or a frame that names us as a requester. Answering
            # it (even with an error) could bounce between two actors forever.
            self.dropped += 1
            self.log.debug("unsolicited reply dropped", body=type(env.body).__name__, sender=env.sender)
            return
        handler = self.table.get(type(env.body))
        if handler is None:
            await self._reply(env, Failure("unsupported_message",
                                           f"{self.name} does not handle {type(env.body).__name__}"))
            return
        try:
            result = await handler(env)
        except Exception as exc:
            result = self._fault(exc, f"handling {type(env.body).__name__}")
        except BaseException:
            # The actor is going down mid-request: the requester hears so now, not at its timeout.
            with trio.CancelScope(shield=True), trio.move_on_after(STOPPING_REPLY_S):
                await self._reply(env, Failure("internal_error", f"{self.name} stopped while handling "
                                                                  f"{type(env.body).__name__}"))
            raise
        if result is not None:
            await self._reply(env, result)

    def _fault(self, exc: Exception, doing: str) -> Failure:
        self.faults += 1
        code = getattr(exc, "failure_code", None)
        if isinstance(code, str):  # an error that names its own code (the store's StorageError)
            self.last_fault = f"{doing}: {exc}"
            self.log.error("handler failed; the actor carries on", doing=doing, code=code, error=str(exc))
            return Failure(code, str(exc))
        self.last_fault = f"{doing}: {exc!r}"
        self.log.error("handler failed; the actor carries on", doing=doing, error=repr(exc))
        return Failure("internal_error", f"{self.name} failed {doing}: {exc!r}")

    async def _reply(self, request: Envelope, body: Any) -> None:
        """Reply, or log why not: a reply that cannot be delivered is never a reason to crash."""
        try:
            await self.system.reply(request, body, sender=self.system.address(self.name))
        except Exception as exc:
            self.log.warning("reply not delivered", recipient=request.sender, error=repr(exc))

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run background work in this actor's nursery, guarded like a handler: an exception is a
        logged, counted fault, not the end of the actor (and of everything else its nursery runs)."""
        assert self._nursery is not None, "spawn() before the actor runs"
        self._nursery.start_soon(self._guarded, fn, args, getattr(fn, "__name__", "task"))

    async def _guarded(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], what: str) -> None:
        try:
            await fn(*args)
        except Exception as exc:
            self._fault(exc, f"in {what}")

    async def _on_actor_status(self, env: Envelope) -> ActorStatus:
        return self.status_record()

    async def request(self, recipient: str, body: Any, *, timeout: float = 30.0) -> Any:
        return await self.system.request(recipient, body, timeout=timeout)

    async def tell(self, recipient: str, body: Any) -> None:
        await self.system.tell(recipient, body, sender=self.system.address(self.name))


def is_reply(env: Envelope) -> bool:
    """Replies carry the id of the request they answer; failures are always answers."""
    return env.correlation_id is not None or isinstance(env.body, Failure)
