"""The actor kernel: addressing, bounded mailboxes, tell / request-reply, failures as data.

An address is ``"name"`` (this node) or ``"node/name"``. Delivery to a local actor skips
serialization unless the system is in *wire mode*, where every envelope is encoded and sent
through a transport (ZeroMQ + msgpack) even between two actors of this process — the end-to-end
tests run once that way to prove every inter-actor message survives the wire.
"""
from __future__ import annotations

import math
import os
from typing import Any, Awaitable, Callable

import structlog
import trio

from protocol.codec import Envelope, new_id
from protocol.errors import RemoteError
from protocol.messages import Failure

log = structlog.get_logger("kernel")

MAILBOX_SIZE = 512
REPLY_BOX = "_reply"


class ActorNotFound(LookupError):
    pass


class RequestTimeout(TimeoutError):
    pass


class _Pending:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reply: Envelope | None = None


class ActorSystem:
    """Routes envelopes to local mailboxes, pending requests, or the wire."""

    def __init__(self, node_id: str | None = None, *, wire_mode: bool = False):
        self.node_id = node_id or f"n{os.getpid():x}{os.urandom(3).hex()}"
        self.wire_mode = wire_mode
        self._mailboxes: dict[str, trio.MemorySendChannel] = {}
        self._receivers: dict[str, trio.MemoryReceiveChannel] = {}
        self._pending: dict[str, _Pending] = {}
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

    # --- sending ---------------------------------------------------------------------------------

    async def tell(self, recipient: str, body: Any, *, sender: str = "", correlation_id: str | None = None) -> None:
        await self.deliver(Envelope(body, recipient, sender, new_id(), correlation_id))

    async def reply(self, request: Envelope, body: Any, *, sender: str = "") -> None:
        if not request.sender:
            return  # a tell: nobody waits
        await self.deliver(Envelope(body, request.sender, sender, new_id(), request.msg_id))

    async def request(self, recipient: str, body: Any, *, timeout: float = 30.0, sender_name: str = REPLY_BOX) -> Any:
        """Send ``body`` and wait for the correlated reply; a ``Failure`` reply raises RemoteError."""
        env = Envelope(body, recipient, self.address(sender_name), new_id())
        pending = self._pending[env.msg_id] = _Pending()
        try:
            with trio.fail_after(timeout if timeout and math.isfinite(timeout) else math.inf):
                await self.deliver(env)
                await pending.event.wait()
        except trio.TooSlowError:
            raise RequestTimeout(f"no reply from {recipient} within {timeout}s") from None
        finally:
            self._pending.pop(env.msg_id, None)
        assert pending.reply is not None
        result = pending.reply.body
        if isinstance(result, Failure):
            raise RemoteError(result.code, result.message, result.details)
        return result

    async def deliver(self, env: Envelope) -> None:
        """Route one envelope. Local delivery awaits mailbox space: that is the backpressure."""
        local = self.is_local(env.recipient)
        if not local or self.wire_mode:
            if self.outbound is not None:
                await self.outbound(env)
                return
            if not local:
                raise ActorNotFound(f"no route to {env.recipient}")
        await self.deliver_local(env)

    async def deliver_local(self, env: Envelope) -> None:
        if env.correlation_id is not None:
            pending = self._pending.get(env.correlation_id)
            if pending is not None:
                pending.reply = env
                pending.event.set()
                return
        _, name = self._split(env.recipient)
        box = self._mailboxes.get(name)
        if box is None:
            if name == REPLY_BOX:
                return  # a late reply to a request that already timed out
            if env.sender and not isinstance(env.body, Failure):
                await self.deliver(Envelope(Failure("unknown_actor", f"no actor named {name!r}"),
                                            env.sender, self.address(name), new_id(), env.msg_id))
            return
        try:
            await box.send(env)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # shutting down


class Actor:
    """A thin message loop: ``handlers`` maps a message class to ``async def (env) -> reply | None``.

    A handler that raises sends a ``Failure`` to the requester (never a silent drop) and then
    re-raises so the supervisor can restart the actor.
    """

    name: str = "actor"

    def __init__(self, system: ActorSystem):
        self.system = system
        self.log = log.bind(actor=self.name)

    def handlers(self) -> dict[type, Callable[[Envelope], Awaitable[Any]]]:
        return {}

    async def setup(self, nursery: trio.Nursery) -> None:
        """Start background work that lives as long as the actor."""

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        table = self.handlers()
        inbox = self.system.mailbox(self.name)
        async with trio.open_nursery() as nursery:
            await self.setup(nursery)
            task_status.started()
            async for env in inbox:
                handler = table.get(type(env.body))
                if handler is None:
                    await self.system.reply(env, Failure("unsupported_message",
                                                         f"{self.name} does not handle {type(env.body).__name__}"),
                                            sender=self.system.address(self.name))
                    continue
                try:
                    result = await handler(env)
                except Exception as exc:
                    await self.system.reply(env, Failure("internal_error", f"{self.name}: {exc!r}"),
                                            sender=self.system.address(self.name))
                    raise
                if result is not None:
                    await self.system.reply(env, result, sender=self.system.address(self.name))

    async def request(self, recipient: str, body: Any, *, timeout: float = 30.0) -> Any:
        return await self.system.request(recipient, body, timeout=timeout)

    async def tell(self, recipient: str, body: Any) -> None:
        await self.system.tell(recipient, body, sender=self.system.address(self.name))
