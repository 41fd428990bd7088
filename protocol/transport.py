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
) -> tuple[zmq.Socket, str | None]:
    with _zmq_errors("creating socket"):
        sock = ctx.socket(socket_type)
    try:
        # Until the owner exists, a failed setup must not keep the socket
        # alive past us; linger 0 so nothing is left queued for ctx.term().
        with _zmq_errors("setting socket option"):
            sock.setsockopt(zmq.LINGER, 0)
            if identity is not None:
                sock.setsockopt(zmq.IDENTITY, identity)
            for option, value in options.items():
                sock.setsockopt(option, value)
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
        raise
    return sock, (last.decode() if last else None)


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

    Raises :class:`EndpointError`/:class:`TransportError` on setup failure.
    """
    if park is not None:
        options = {**(options or {}), zmq.ROUTER_MANDATORY: 1}
    sock, last_endpoint = _configure(
        ctx,
        socket_type,
        bind=_endpoints(bind),
        connect=_endpoints(connect),
        identity=identity,
        options=options or {},
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
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(zsock._own)
            try:
                yield zsock
            finally:
                await zsock.aclose()
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


def _reraise_keeping_context(exc: BaseException) -> NoReturn:
    context = exc.__context__
    try:
        raise exc
    finally:
        # ``raise`` inside ``except`` would chain the group we are unwrapping.
        exc.__context__ = context
        del exc, context
