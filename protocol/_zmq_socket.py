"""The transport's socket and its owner task (public names: ``protocol.transport``).

Why the owner loop looks the way it does: ``sock.FD`` is edge-triggered and
*any* ZMQ call on the socket (a send, a recv, reading EVENTS) may consume the
edge that announced new work. So the owner re-reads ``EVENTS`` after every
batch of sends and receives and only sleeps on the FD when ``EVENTS`` itself
said there is nothing it can do; that is the one state in which ZMQ promises
to signal the FD again. Because only the owner ever touches the socket, no
other task can swallow an edge behind its back.

The owner sleeps in one wait_readable on a private epoll set holding the ZMQ
FD and an eventfd: ZeroMQ's signal and a wake-up by another task (a sender,
a receiver making room) end the same wait, and a wake-up costs an eventfd
write, not a task switch. (Interrupting a wait_readable on the ZMQ FD alone
would mean cancelling it, which costs more than the whole rest of a round
trip; a helper task waiting on the FD for the owner, as before, cost two task
steps per message received.)

Task switches are the largest cost of a hop, so the hot paths avoid the ones
that buy nothing: ``send_nowait`` queues without a schedule point (a relay
hands a run of messages to the owner, which sends them in one pump with one
trailing EVENTS read), and ``receive`` takes a waiting message without one,
yielding once per _YIELD_EVERY.
"""
from __future__ import annotations

import contextlib
import os
import select
from collections import deque
from collections.abc import Callable, Iterable
from typing import NoReturn, cast

import trio
import zmq

from ._transport_errors import TransportClosed, TransportError, _translate
from ._transport_park import Frames, ParkPolicy, _Parking

# Upper bound on messages moved per wake-up before the owner yields, so a
# firehose peer cannot starve the tasks that consume what it sends.
_BATCH = 256

# A receiver that finds messages waiting takes them without a task switch, but
# still yields once per this many, so a busy socket cannot starve other tasks.
_YIELD_EVERY = 32

# The owner's hot path skips pyzmq's pure-Python "sugar" layer (enum flags,
# per-frame type checks, routing_id/group handling we never use): calling the
# Cython base methods with plain ints makes a multipart send ~5x cheaper.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_zmq_send = zmq.backend.Socket.send
_zmq_recv = zmq.backend.Socket.recv
_zmq_get = zmq.backend.Socket.get


class PeerFrames(list):
    """A received message plus what the OS said about the peer (ZeroMQ's ``Peer-Address``) and,
    on a CURVE socket, the ``User-Id`` its ZAP handler gave the connection (the client's key)."""

    __slots__ = ("peer", "user")

    def __init__(self, frames: Iterable[bytes], peer: str | None, user: str | None = None) -> None:
        super().__init__(frames)
        self.peer = peer
        self.user = user


class ZmqSocket(_Parking):
    """A ZMQ socket driven by its own trio task; safe to share between tasks.

    Obtain one from :func:`open_zmq_socket`. ``send`` and ``receive`` carry
    whole multipart messages. Both raise :class:`TransportClosed` once the
    socket is closed or its owner failed; a failure is chained as the cause.
    """

    def __init__(
        self,
        sock: zmq.Socket,
        *,
        last_endpoint: str | None,
        linger: float,
        send_buffer: int,
        receive_buffer: int,
        peer_address: bool = False,
        park: ParkPolicy | None = None,
        curve_server: bool = False,
    ) -> None:
        self._sock = sock
        self._peer_address = peer_address
        self._curve_server = curve_server   # then ZAP gave each connection a User-Id worth reading
        # ROUTER only (with ROUTER_MANDATORY): per-peer queues of parked messages, oldest first.
        self._park = park
        self._parked: dict[bytes, deque[Frames]] = {}
        self._retry_due = False
        self._retry_progressed = False
        self._retry_wanted = trio.Event()
        self._fd = sock.FD
        # What the owner sleeps on: ZeroMQ's FD and the eventfd other tasks wake it with (made by
        # the owner when it starts, closed when it ends).
        self._wake_fd = -1
        self._poller: select.epoll | None = None
        self._linger_ms = max(0, round(linger * 1000))
        self.last_endpoint = last_endpoint
        self._out_send, self._out_recv = trio.open_memory_channel[Frames](send_buffer)
        self._in_send, self._in_recv = trio.open_memory_channel[Frames](receive_buffer)
        # Taken off the outbound channel but refused by ZMQ (HWM): goes first next time.
        self._unsent: Frames | None = None
        # Cleared when the owner finds the outbound channel empty, so an idle
        # direction costs a flag test, not a WouldBlock, per pump round.
        self._maybe_outgoing = False
        # Received from ZMQ while the inbound channel was full: delivered first
        # once a receiver makes room. While set, the owner stops reading so that
        # ZMQ's own high-water mark pushes back on the peer.
        self._undelivered: Frames | None = None
        # True while the owner sleeps; a wake-up then writes the eventfd (once: _wake_sent).
        self._owner_sleeps = False
        self._wake_sent = False
        # True when EVENTS must be read before trusting _events_seen: after ZeroMQ's FD may have
        # fired, after a refused send, and after settle(). Starts True: nobody has read EVENTS.
        self._fd_fired = True
        # The last EVENTS read. Stays accurate while only the owner touches the socket and it did
        # not sleep, so more outgoing messages need not pay for another read (a syscall inside ZMQ).
        self._events_seen = 0
        self._owner_scope = trio.CancelScope()
        self._owner_done = trio.Event()
        self._failure: TransportError | None = None
        self._closing = False
        # Messages handed out by receive() without a schedule point in a row.
        self._unyielded = 0
        self._dispatch: Callable[[Frames], bool] | None = None
        # Put into the inbound channel and not yet returned by receive(): unlike the channel's own
        # count, this includes a message handed straight to a receiver that has not run yet.
        self._in_count = 0
        # settle() callers, released once the owner has taken in all that ZeroMQ holds.
        self._settle_waiters: list[trio.Event] = []
        # Set by open_zmq_socket(monitor=...): this socket's connection events.
        self.monitor: ZmqSocket | None = None

    # ---------------------------------------------------------------- public API

    @property
    def closed(self) -> bool:
        return self._owner_done.is_set()

    async def send(self, frames: Iterable[bytes]) -> None:
        """Queue one multipart message; waits while the outbound buffer is full.

        Frames are bytes-like; non-``bytes`` ones are copied now, so the caller
        may reuse its buffers at once.
        """
        frames = [f if type(f) is bytes else _as_bytes(f) for f in frames]
        if not frames:
            raise ValueError("a ZMQ message needs at least one frame")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._maybe_outgoing = True
        try:
            try:
                self._out_send.send_nowait(frames)
            except trio.WouldBlock:
                # Full: the owner is waiting for ZMQ to take more and will drain
                # us. Still wake it, in case it is idle with a zero-size buffer.
                self._wake_owner()
                await self._out_send.send(frames)
                return
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._raise_closed()
        self._wake_owner()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, frames: Iterable[bytes]) -> None:
        """Queue one multipart message without waiting and without yielding.

        Raises ``trio.WouldBlock`` when the outbound buffer is full (then
        ``await send(...)`` waits for room). For hot paths that already have
        their own checkpoints: a task relaying a stream queues a run of
        messages, and the owner, woken once, sends them in one pump.
        """
        frames = [f if type(f) is bytes else _as_bytes(f) for f in frames]
        if not frames:
            raise ValueError("a ZMQ message needs at least one frame")
        try:
            self._out_send.send_nowait(frames)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._raise_closed()
        self._maybe_outgoing = True
        self._wake_owner()

    async def receive(self) -> Frames:
        """The next multipart message.

        Cancel-safe: if cancelled, no message is consumed, so the next
        receiver gets it.
        """
        # Fast path: a message is already waiting. A cancellation point first
        # (so a cancelled receiver consumes nothing), then a schedule point
        # only every _YIELD_EVERY messages: a consumer draining a burst pays
        # one task switch per run of messages, not one per message.
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            frames = self._in_recv.receive_nowait()
        except trio.WouldBlock:
            try:
                frames = await self._in_recv.receive()
            except (trio.ClosedResourceError, trio.EndOfChannel):
                self._raise_closed()
            self._unyielded = 0
            self._in_count -= 1
        except (trio.ClosedResourceError, trio.EndOfChannel):
            self._raise_closed()
        else:
            self._in_count -= 1
            self._unyielded += 1
            if self._unyielded >= _YIELD_EVERY:
                self._unyielded = 0
                if self._undelivered is not None:
                    self._wake_owner()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return frames
        if self._undelivered is not None:
            self._wake_owner()
        return frames

    @property
    def queued(self) -> int:
        """Messages received and not yet returned by ``receive()`` (one held back by a full buffer,
        and one handed to a receiver that has not run yet, included)."""
        return self._in_count + (self._undelivered is not None)

    async def settle(self) -> None:
        """Wait until the owner has taken in every message ZeroMQ had received when this was called:
        handed to the dispatch function or queued for ``receive()`` (or it stopped at one held back
        by a full inbound buffer: ``queued`` is then not 0). A connection event seen on ``monitor``
        says "the peer is gone" while that peer's last messages may still wait inside ZeroMQ (a
        separate socket, a separate wake-up); settling first keeps them ahead of it."""
        if self.closed:
            await trio.lowlevel.checkpoint()
            return
        done = trio.Event()
        self._settle_waiters.append(done)
        # The FD's signal for those messages may not have reached the owner yet: read EVENTS anyway.
        self._fd_fired = True
        self._wake_owner()
        await done.wait()

    def set_dispatch(self, dispatch: Callable[[Frames], bool] | None) -> None:
        """Let the owner task hand each received message to ``dispatch`` itself while no message
        waits for ``receive()`` (``queued`` is 0): True means handled; False, that ``receive()``
        gets it as usual, and the messages after it queue behind it. Saves the receiving task's
        switch for messages a plain function can handle (a reply that only wakes its requester).

        What the receiver does after ``receive()`` returned is its own: one that may still be busy
        with an earlier message (waiting to pass it on) keeps refusing until it has caught up, as
        the client and the node do. ``dispatch`` runs inside the owner, so it must be quick and
        never block; an exception it raises fails the socket."""
        self._dispatch = dispatch

    def __aiter__(self) -> ZmqSocket:
        return self

    async def __anext__(self) -> Frames:
        """Iteration ends quietly on ``aclose()``; a failed socket still raises."""
        try:
            return await self.receive()
        except TransportClosed:
            if self._failure is None:
                raise StopAsyncIteration from None
            raise

    async def aclose(self) -> None:
        """Stop the owner task and close the socket (best-effort flush, bounded linger).

        Messages not yet received are dropped; pending ``receive()`` calls raise
        :class:`TransportClosed`. Idempotent.
        """
        if not self._closing:
            self._closing = True
            # Closing our ends first fails waiting senders/receivers promptly,
            # without waiting for the owner to get scheduled.
            self._in_recv.close()
            self._out_send.close()
            self._owner_scope.cancel()
        # The owner's cleanup is synchronous, so this only waits for it to be
        # scheduled; the bound guards against an owner that never started.
        with trio.move_on_after(5, shield=True):
            await self._owner_done.wait()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------- owner task

    async def _own(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poller = poller = select.epoll()
        poller.register(self._fd, select.EPOLLIN)
        poller.register(self._wake_fd, select.EPOLLIN)
        try:
            with self._owner_scope:
                async with trio.open_nursery() as nursery:
                    if self._park is not None:
                        nursery.start_soon(self._retry_parked_ticker)
                    task_status.started()
                    try:
                        await self._serve()
                    except TransportError as exc:
                        # Reported to users through send/receive rather than by
                        # crashing the caller's scope: callers already handle
                        # TransportClosed there, and one seam is enough.
                        self._failure = exc
                    nursery.cancel_scope.cancel()
        finally:
            # Runs after the owner stopped waiting, so no FD is closed under a pending wait_readable.
            self._shutdown()

    async def _serve(self) -> NoReturn:
        poller = self._poller
        assert poller is not None
        while True:
            if not self._pump():
                # Budget spent: let consumers catch up, then continue.
                await trio.lowlevel.checkpoint()
                continue
            if self._settle_waiters:
                self._release_settled()
            # _pump ended on an EVENTS read showing nothing to do, so ZMQ will signal its FD on the
            # next change. While a message is held back (a full inbound channel) only a receiver
            # making room may wake us: ZeroMQ's FD could stay readable with nothing we may do.
            self._owner_sleeps = True
            try:
                await trio.lowlevel.wait_readable(self._wake_fd if self._undelivered is not None else poller)
            finally:
                self._owner_sleeps = False
            if self._wake_sent:
                self._wake_sent = False
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self._wake_fd)
                # Woken to send (a request, a turn's events): _pump sends on the last EVENTS read
                # and reads EVENTS after it anyway, which also catches anything ZeroMQ signalled.
                if not self._maybe_outgoing:
                    self._fd_fired = True
            else:
                self._fd_fired = True

    def _pump(self) -> bool:
        """Move messages both ways until EVENTS shows nothing actionable.

        Returns False if it stopped because the batch budget ran out.
        """
        budget = _BATCH
        may_read = self._deliver_undelivered()
        if self._retry_due:
            self._retry_due = False
            if self._retry_parked():
                self._retry_progressed = True
            self._fd_fired = True   # those sends may have eaten the FD's signal for something else
        events = self._events() if self._fd_fired else self._events_seen
        # With a park policy every send is tried: a full pipe parks that peer's messages instead of
        # holding up the others (ZeroMQ clears POLLOUT only when *every* pipe is full).
        writable = _POLLOUT if self._park is not None else 0
        rechecked = False
        while True:
            moved = 0
            # Receive first: a reply the dispatch function queues (the node answering a Ping) goes
            # out in the same round, not after one more EVENTS read. Receiving never fills a pipe,
            # so the POLLOUT read before it still holds.
            if events & _POLLIN and may_read:
                may_read = self._receive_one()
                moved = 1
            if (events | writable) & _POLLOUT and self._maybe_outgoing:
                moved += self._send_some(budget)
            if not moved:
                if not self._fd_fired or rechecked:
                    return True
                rechecked = True
                events = self._events()   # a refused send may have eaten the FD's signal
                continue
            budget -= moved
            if budget <= 0:
                return False
            # Every send or receive may have eaten the FD edge for the other
            # direction, so only a fresh EVENTS read may end the loop.
            events = self._events()

    def _events(self) -> int:
        try:
            # ZMQ_EVENTS is an int option; the backend's signature covers every option (int | bytes).
            events = cast(int, _zmq_get(self._sock, _EVENTS))
        except zmq.ZMQError as exc:
            raise _translate(exc, "reading socket events") from exc
        self._events_seen = events
        self._fd_fired = False
        return events

    def _send_some(self, budget: int) -> int:
        sock = self._sock
        sent = 0
        while sent < budget:
            frames = self._unsent
            if frames is None:
                try:
                    frames = self._out_recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    self._maybe_outgoing = False
                    break
            self._unsent = None
            if self._park is not None:
                self._send_or_park(frames)
                sent += 1
                continue
            try:
                # Atomic: ZMQ checks the high-water mark on the first frame
                # only, so Again can only mean nothing was queued.
                for frame in frames[:-1]:
                    _zmq_send(sock, frame, _NOBLOCK_SNDMORE)
                _zmq_send(sock, frames[-1], _NOBLOCK)
            except zmq.Again:
                self._unsent = frames
                self._fd_fired = True
                break
            except zmq.ZMQError as exc:
                raise _translate(exc, "sending") from exc
            sent += 1
        return sent


    def _receive_one(self) -> bool:
        """Receive a message ZMQ said is there; False if it had to be held back."""
        frames: Frames = []
        try:
            # Atomic: once the first frame is here, so are the rest.
            while True:
                frame = _zmq_recv(self._sock, _NOBLOCK, copy=False)
                frames.append(frame.bytes)
                if not frame.more:
                    break
        except zmq.Again:
            return True
        except zmq.ZMQError as exc:
            raise _translate(exc, "receiving") from exc
        if self._peer_address:
            user = _property_of(frame, "User-Id") if self._curve_server else None
            frames = PeerFrames(frames, _peer_address_of(frame), user)
        dispatch = self._dispatch
        if dispatch is not None and not self._in_count and dispatch(frames):
            return True
        try:
            self._in_send.send_nowait(frames)
        except trio.WouldBlock:
            self._undelivered = frames
            return False
        except trio.BrokenResourceError:
            return True  # receive side closed by aclose(): nobody wants it any more
        self._in_count += 1
        return True

    def _deliver_undelivered(self) -> bool:
        """Push the held-back message if there is room now; True if reading may go on."""
        if self._undelivered is None:
            return True
        try:
            self._in_send.send_nowait(self._undelivered)
            self._in_count += 1
        except trio.WouldBlock:
            return False
        except trio.BrokenResourceError:
            pass
        self._undelivered = None
        return True

    def _shutdown(self) -> None:
        if self._failure is None:
            # Hand ZMQ whatever callers already queued so that "send, then
            # aclose" delivers; never waits, linger bounds the rest.
            with contextlib.suppress(TransportError):
                self._send_some(self._out_send.statistics().current_buffer_used + 1)
        assert self._poller is not None
        for fd in (self._fd, self._poller.fileno(), self._wake_fd):
            trio.lowlevel.notify_closing(fd)
        self._poller.close()
        os.close(self._wake_fd)
        self._sock.close(linger=self._linger_ms)
        # Closing our ends (not the users'): receivers first drain what is
        # already buffered, then see the end; blocked senders fail at once.
        self._in_send.close()
        self._out_recv.close()
        self._owner_done.set()
        self._release_settled()

    def _release_settled(self) -> None:
        waiters, self._settle_waiters = self._settle_waiters, []
        for done in waiters:
            done.set()

    # -------------------------------------------------------------- helpers

    def _wake_owner(self) -> None:
        if self._owner_sleeps and not self._wake_sent:
            self._wake_sent = True
            os.eventfd_write(self._wake_fd, 1)

    def _raise_closed(self) -> NoReturn:
        if self._failure is not None:
            raise TransportClosed(f"socket failed: {self._failure}", self._failure.errno) from self._failure
        raise TransportClosed("socket is closed") from None


def _peer_address_of(frame: zmq.Frame) -> str | None:
    try:
        address = frame.get("Peer-Address")
        return address if isinstance(address, str) else None
    except (zmq.ZMQError, KeyError, TypeError):
        return None


def _property_of(frame: zmq.Frame, name: str) -> str | None:
    try:
        value = frame.get(name)
        return value if isinstance(value, str) and value else None
    except (zmq.ZMQError, KeyError, TypeError):
        return None


def _as_bytes(frame: object) -> bytes:
    # Checked here, in the caller's task: a bad frame reaching the owner
    # would take the socket down for every other user.
    try:
        # memoryview() is the buffer check itself (3.11 has no Buffer ABC to narrow ``object`` with).
        return bytes(memoryview(frame))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"frame must be bytes-like, not {type(frame).__name__}") from None
