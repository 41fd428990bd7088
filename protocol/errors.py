"""Typed errors of the protocol layer. Each has a stable ``code`` that also names it on the wire."""
from __future__ import annotations


class ProtocolError(Exception):
    code = "protocol_error"


class FrameError(ProtocolError):
    """A frame that cannot be turned into a message. The sender gets a ``Failure`` with ``code``."""

    code = "bad_frame"


class FrameTooLarge(FrameError):
    code = "frame_too_large"


class NotMsgpack(FrameError):
    code = "not_msgpack"


class MalformedFrame(FrameError):
    code = "malformed_frame"


class UnknownTag(FrameError):
    code = "unknown_tag"


class UnsupportedVersion(FrameError):
    code = "unsupported_version"


class RemoteError(ProtocolError):
    """A ``Failure`` reply re-raised at the caller of a request."""

    def __init__(self, code: str, message: str, details: dict | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}
