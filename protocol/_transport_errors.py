"""The transport's exceptions, and the one place where ZeroMQ's become ours (see transport.py)."""
from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import trio
import zmq


class TransportError(Exception):
    """A ZeroMQ operation failed. ``errno`` is ZMQ's error number, if any."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class TransportClosed(TransportError, trio.ClosedResourceError):
    """The socket is closed: by ``aclose()``, by context termination, or
    because its owner task stopped on an error (then chained as ``__cause__``)."""


class EndpointError(TransportError):
    """``bind``/``connect`` rejected an endpoint (bad syntax, address in use, ...)."""


# Context terminated, or socket already closed: the socket is gone for good.
_CLOSED_ERRNOS = {zmq.ETERM, errno.ENOTSOCK}


def _translate(exc: zmq.ZMQError, doing: str, endpoint: str | None = None) -> TransportError:
    """The one place where ZMQ exceptions become transport exceptions."""
    where = f" {endpoint!r}" if endpoint is not None else ""
    message = f"{doing}{where}: {exc.strerror}"
    if exc.errno in _CLOSED_ERRNOS:
        return TransportClosed(message, exc.errno)
    if endpoint is not None:
        return EndpointError(message, exc.errno)
    return TransportError(message, exc.errno)


@contextlib.contextmanager
def _zmq_errors(doing: str, endpoint: str | None = None) -> Iterator[None]:
    try:
        yield
    except zmq.ZMQError as exc:
        raise _translate(exc, doing, endpoint) from exc
