"""trio <-> ZeroMQ transport: ``open_zmq_socket`` gives a ZeroMQ socket driven by one owning trio task.

pyzmq has no trio integration, so each socket gets one owning task that does every ZMQ call and
talks to the rest of the program through bounded memory channels. Everything ZMQ-specific,
including its exceptions, stays in this module and its private parts: ``_zmq_socket`` (the socket
and why its owner loop looks the way it does), ``_transport_park`` (a ROUTER's parking of messages
for peers that do not read), ``_transport_errors``.
"""
from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import NoReturn

import trio
import zmq

from ._transport_errors import EndpointError, TransportClosed, TransportError, _zmq_errors
from ._transport_park import ParkPolicy
from ._zmq_socket import PeerFrames, ZmqSocket

__all__ = [
    "ANY_TCP",
    "EndpointError",
    "ParkPolicy",
    "PeerFrames",
    "TransportClosed",
    "TransportError",
    "ZmqSocket",
    "ipc_endpoint",
    "monitor_event",
    "open_zmq_socket",
]

# Bind here and read ``ZmqSocket.last_endpoint`` to learn the port the OS chose.
ANY_TCP = "tcp://127.0.0.1:*"


def ipc_endpoint(directory: str | os.PathLike[str] | None = None) -> str:
    """A fresh ``ipc://`` endpoint in ``directory`` (default: the temp dir).

    Keep ``directory`` short: socket paths are limited to ~100 bytes. ZMQ
    removes the file again when the socket bound to it closes.
    """
    directory = os.fspath(directory) if directory is not None else tempfile.gettempdir()
    return f"ipc://{os.path.join(directory, f'zmq-{uuid.uuid4().hex[:12]}.sock')}"


def _endpoints(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _configure(
    ctx: zmq.Context,
    socket_type: int,
    *,
    bind: list[str],
    connect: list[str],
    identity: bytes | None,
    options: Mapping[int, int | bytes],
    monitor: int = 0,
) -> tuple[zmq.Socket, str | None, zmq.Socket | None]:
    with _zmq_errors("creating socket"):
        sock = ctx.socket(socket_type)
    watcher: zmq.Socket | None = None
    try:
        # Until the owner exists, a failed setup must not keep the socket
        # alive past us; linger 0 so nothing is left queued for ctx.term().
        with _zmq_errors("setting socket option"):
            sock.setsockopt(zmq.LINGER, 0)
            if identity is not None:
                sock.setsockopt(zmq.IDENTITY, identity)
            for option, value in options.items():
                sock.setsockopt(option, value)
        if monitor:
            # Before connect, so that the first connection's events are seen too.
            address = f"inproc://monitor-{uuid.uuid4().hex}"
            with _zmq_errors("monitoring socket"):
                sock.monitor(address, monitor)
                watcher = ctx.socket(zmq.PAIR)
                watcher.setsockopt(zmq.LINGER, 0)
                watcher.connect(address)
        for endpoint in bind:
            with _zmq_errors("bind", endpoint):
                sock.bind(endpoint)
        for endpoint in connect:
            with _zmq_errors("connect", endpoint):
                sock.connect(endpoint)
        with _zmq_errors("reading last endpoint"):
            last = sock.getsockopt(zmq.LAST_ENDPOINT)
    except BaseException:
        sock.close(linger=0)
        if watcher is not None:
            watcher.close(linger=0)
        raise
    return sock, (last.decode() if last else None), watcher


@contextlib.asynccontextmanager
async def open_zmq_socket(
    ctx: zmq.Context,
    socket_type: int,
    *,
    bind: str | Iterable[str] | None = None,
    connect: str | Iterable[str] | None = None,
    identity: bytes | None = None,
    options: Mapping[int, int | bytes] | None = None,
    linger: float = 0.1,
    send_buffer: int = 256,
    receive_buffer: int = 256,
    peer_address: bool = False,
    park: ParkPolicy | None = None,
    monitor: int = 0,
) -> AsyncIterator[ZmqSocket]:
    """Create, configure and own a ZMQ socket for the duration of the block.

    ``options`` are raw ``setsockopt`` pairs applied before bind/connect.
    ``linger`` (seconds) bounds how long unsent messages outlive the socket.
    ``send_buffer``/``receive_buffer`` size the memory channels; together with
    ZMQ's high-water marks they are the backpressure.

    ``peer_address``: received messages are :class:`PeerFrames` carrying ZeroMQ's
    ``Peer-Address`` (over ipc it ends in the peer's ``:uid:gid:pid``).
    ``park`` (ROUTER only): messages for a peer that is not reading are handed to this
    :class:`ParkPolicy` instead of being dropped by ZeroMQ or stalling the socket.
    ``monitor``: a mask of ``zmq.EVENT_*`` flags; the socket's connection events then arrive on
    ``ZmqSocket.monitor``, a PAIR socket with its own owner task (read them with
    :func:`monitor_event`). A DEALER learns this way that its peer went away, which ZeroMQ's
    messages alone never say.

    Raises :class:`EndpointError`/:class:`TransportError` on setup failure.
    """
    if park is not None:
        options = {**(options or {}), zmq.ROUTER_MANDATORY: 1}
    sock, last_endpoint, watcher = _configure(
        ctx,
        socket_type,
        bind=_endpoints(bind),
        connect=_endpoints(connect),
        identity=identity,
        options=options or {},
        monitor=monitor,
    )
    zsock = ZmqSocket(
        sock,
        last_endpoint=last_endpoint,
        linger=linger,
        send_buffer=send_buffer,
        receive_buffer=receive_buffer,
        peer_address=peer_address,
        park=park,
        curve_server=bool((options or {}).get(zmq.CURVE_SERVER)),
    )
    monitor_sock = (None if watcher is None else
                    ZmqSocket(watcher, last_endpoint=None, linger=0, send_buffer=1, receive_buffer=64))
    try:
        async with trio.open_nursery() as nursery:
            if monitor_sock is not None:
                await nursery.start(monitor_sock._own)
                zsock.monitor = monitor_sock
            await nursery.start(zsock._own)
            try:
                yield zsock
            finally:
                await zsock.aclose()
                if monitor_sock is not None:   # after its socket: that one's close ends the events
                    await monitor_sock.aclose()
    except BaseExceptionGroup as group:
        # The owner never raises (failures are stored, not thrown), so the
        # group only wraps what the body raised: give callers that back
        # instead of an artefact of our private nursery.
        if len(group.exceptions) != 1:
            raise
        _reraise_keeping_context(group.exceptions[0])
    finally:
        if not sock.closed:  # only if the owner never got to run
            sock.close(linger=0)
        if watcher is not None and not watcher.closed:
            watcher.close(linger=0)


def monitor_event(frames: list[bytes]) -> int:
    """The ``zmq.EVENT_*`` a message from ``ZmqSocket.monitor`` reports (0 if it is malformed)."""
    if len(frames) != 2 or len(frames[0]) != 6:
        return 0
    return int(struct.unpack_from("=H", frames[0])[0])


def _reraise_keeping_context(exc: BaseException) -> NoReturn:
    context = exc.__context__
    try:
        raise exc
    finally:
        # ``raise`` inside ``except`` would chain the group we are unwrapping.
        exc.__context__ = context
        del exc, context
