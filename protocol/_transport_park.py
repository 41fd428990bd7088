"""Parking for a ROUTER socket: messages for a peer that is not reading wait, in order, instead of
being dropped by ZeroMQ or stalling every other peer (see ``ParkPolicy``)."""
from __future__ import annotations

import errno
from collections import deque
from typing import NoReturn, Protocol

import trio
import zmq

from ._transport_errors import _translate

Frames = list[bytes]

_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_zmq_send = zmq.backend.Socket.send
_EHOSTUNREACH = int(zmq.EHOSTUNREACH)

# A ROUTER peer whose pipe is full is retried after this long, doubling up to the maximum while it
# makes no progress: a client that stopped reading costs a few wake-ups a second, not a core.
_RETRY_FIRST_S = 0.005
_RETRY_MAX_S = 0.5


class ParkPolicy(Protocol):
    """What a ROUTER does with messages for a peer that is not reading (its pipe is full).

    Instead of ZeroMQ's silent drop (or stalling every other peer), the message is *parked*: the
    policy returns what to keep of it (nothing, the message, or the message plus a notice before
    it); later messages for that peer are parked behind it, in order, and sent once the peer reads
    again. ``gone`` says a peer disconnected: whatever was parked for it is dropped.
    """

    def park(self, frames: Frames, waiting: int) -> list[Frames]:
        """What to keep of ``frames``; ``waiting``: how many messages already wait for that peer."""
        ...

    def gone(self, routing_id: bytes) -> None: ...


class _Parking:
    """The parking half of ``ZmqSocket`` (a ROUTER with a park policy); only its owner task calls it."""

    _sock: zmq.Socket
    _park: ParkPolicy | None
    _parked: dict[bytes, deque[Frames]]
    _retry_due: bool
    _retry_progressed: bool
    _retry_wanted: trio.Event

    def _wake_owner(self) -> None:
        raise NotImplementedError

    def _try_send(self, frames: Frames) -> int:
        """0 if sent, else EAGAIN (pipe full) or EHOSTUNREACH (no such peer)."""
        try:
            for frame in frames[:-1]:
                _zmq_send(self._sock, frame, _NOBLOCK_SNDMORE)
            _zmq_send(self._sock, frames[-1], _NOBLOCK)
        except zmq.Again:
            return errno.EAGAIN
        except zmq.ZMQError as exc:
            if exc.errno == _EHOSTUNREACH:
                return _EHOSTUNREACH
            raise _translate(exc, "sending") from exc
        return 0

    def _send_or_park(self, frames: Frames) -> None:
        assert self._park is not None
        rid = frames[0]
        queue = self._parked.get(rid)
        if queue is not None:  # keep the order: behind what already waits
            queue.extend(self._park.park(frames, len(queue)))
            return
        err = self._try_send(frames)
        if err == errno.EAGAIN:
            kept = self._park.park(frames, 0)
            if kept:
                self._parked[rid] = deque(kept)
                self._retry_wanted.set()
        elif err:
            self._park.gone(rid)

    def _retry_parked(self) -> bool:
        """Send what waits for peers that read again; True if anything went out."""
        assert self._park is not None
        progressed = False
        for rid in list(self._parked):
            queue = self._parked[rid]
            while queue:
                err = self._try_send(queue[0])
                if err == errno.EAGAIN:
                    break
                if err:
                    queue.clear()
                    self._park.gone(rid)
                    break
                queue.popleft()
                progressed = True
            if not queue:
                del self._parked[rid]
        return progressed

    async def _retry_parked_ticker(self) -> NoReturn:
        delay = _RETRY_FIRST_S
        while True:
            if not self._parked:
                self._retry_wanted = trio.Event()
                await self._retry_wanted.wait()
                delay = _RETRY_FIRST_S
            await trio.sleep(delay)
            # Back off while the peers stay stuck; back to quick retries as soon as one reads.
            delay = _RETRY_FIRST_S if self._retry_progressed else min(delay * 2, _RETRY_MAX_S)
            self._retry_progressed = False
            self._retry_due = True
            self._wake_owner()

    @property
    def parked(self) -> int:
        """Messages waiting for peers that do not read (ROUTER with a park policy)."""
        return sum(len(q) for q in self._parked.values())
