"""The wire format: an envelope as a msgpack array, its body unstructured by one cattrs converter.

Wire layout (pinned by golden-byte tests)::

    [major, minor, tag, msg_id, correlation_id, sender, recipient, body]
"""
from __future__ import annotations

import os
import threading
import traceback
from itertools import count
from collections.abc import Callable
from typing import Generic, TypeVar, get_args

import attrs
import cattrs
import msgpack
from attrs import frozen
from cattrs.strategies import configure_tagged_union

from .canonical import ContentBlock
from .errors import FrameTooLarge, MalformedFrame, NotMsgpack, UnknownTag, UnsupportedVersion
from .events import EVENT_TYPES, Event, TypedEvent
from .messages import TAGS, TAG_OF

PROTOCOL_VERSION = (1, 0)
MAX_FRAME_BYTES = 16 * 1024 * 1024


_BLOCK_TYPES: tuple[type[ContentBlock], ...] = get_args(ContentBlock)
# The wire tag of each union member, keyed as cattrs asks for it (by class).
_BLOCK_TAG: dict[type, str] = {cls: cls.TAG for cls in _BLOCK_TYPES}
_EVENT_TAG: dict[type, str] = {cls: cls.TYPE for cls in EVENT_TYPES}


def _make_converter(detailed: bool) -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=detailed)
    configure_tagged_union(ContentBlock, conv, tag_name="type", tag_generator=_BLOCK_TAG.__getitem__)
    configure_tagged_union(Event, conv, tag_name="type", tag_generator=_EVENT_TAG.__getitem__)
    return conv


# Built once: building converters per call costs far more than (un)structuring itself.
converter = _make_converter(detailed=True)
_fast = _make_converter(detailed=False)

_ids = count(1)
_id_prefix = os.urandom(4).hex()


def new_id() -> str:
    """Process-unique message id (cheap: a counter behind a random per-process prefix)."""
    return f"{_id_prefix}{next(_ids):x}"


Body = TypeVar("Body", covariant=True)


@frozen
class Envelope(Generic[Body]):
    """One message on its way; a handler names its message class as ``Envelope[StartTurn]``."""

    body: Body
    recipient: str
    sender: str = ""
    msg_id: str = attrs.field(factory=new_id)
    correlation_id: str | None = None
    version: tuple[int, int] = PROTOCOL_VERSION


# Hot-path caches (every frame goes through encode/decode): the converter's hook for each message
# class, looked up once instead of dispatched per call, and one msgpack Packer per thread instead
# of a new one per frame (a Packer is not thread-safe; tools run in worker threads).
_unstructure_hooks: dict[type, object] = {}
_structure_hooks: dict[type, object] = {}
_local = threading.local()


def _unstructure_hook(cls: type):
    hook = _unstructure_hooks.get(cls)
    if hook is None:
        hook = _unstructure_hooks[cls] = _fast.get_unstructure_hook(cls)
    return hook


def _structure_hook(cls: type):
    hook = _structure_hooks.get(cls)
    if hook is None:
        hook = _structure_hooks[cls] = _fast.get_structure_hook(cls)
    return hook


def _packer() -> msgpack.Packer:
    try:
        return _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
        return packer


def encode(env: Envelope) -> bytes:
    body = env.body
    cls = type(body)
    tag = TAG_OF[cls]
    version = env.version
    return _packer().pack(
        [version[0], version[1], tag, env.msg_id, env.correlation_id, env.sender,
         env.recipient, _unstructure_hook(cls)(body)]
    )


def decode(frame: bytes, stamp: Callable[[str], str] | None = None) -> Envelope:
    """Turn bytes into an Envelope or raise a FrameError subclass — never anything else.

    ``stamp`` (the node, for a client's frame) turns the sender the frame claims into the one the
    envelope gets, saving a second Envelope per frame."""
    if len(frame) > MAX_FRAME_BYTES:
        raise FrameTooLarge(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        raw = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises a handful of unrelated types for garbage
        raise NotMsgpack(f"frame is not msgpack: {exc.__class__.__name__}") from None
    if not isinstance(raw, list) or len(raw) != 8:
        raise MalformedFrame("frame is not an 8-item envelope array")
    major, minor, tag, msg_id, corr, sender, recipient, body = raw
    if not isinstance(major, int) or not isinstance(minor, int):
        raise MalformedFrame("envelope version is not two integers")
    if major > PROTOCOL_VERSION[0]:
        raise UnsupportedVersion(f"protocol {major}.{minor} is newer than {PROTOCOL_VERSION[0]}.x")
    if not (isinstance(tag, str) and isinstance(msg_id, str) and isinstance(sender, str)
            and isinstance(recipient, str) and (corr is None or isinstance(corr, str))):
        raise MalformedFrame("envelope header fields have the wrong types")
    cls = TAGS.get(tag)
    if cls is None:
        raise UnknownTag(f"unknown message tag {tag!r}")
    try:
        obj = _structure_hook(cls)(body, cls)
    except Exception:
        raise MalformedFrame(describe_structure_error(body, cls)) from None
    if stamp is not None:
        sender = stamp(sender)
    return Envelope(obj, recipient, sender, msg_id, corr,
                    PROTOCOL_VERSION if major == PROTOCOL_VERSION[0] and minor == PROTOCOL_VERSION[1]
                    else (major, minor))


def describe_structure_error(body: object, cls: type) -> str:
    """Re-run the slow, detailed path only for the error message."""
    try:
        converter.structure(body, cls)
    except Exception as exc:
        detail = "; ".join(cattrs.transform_error(exc)) if isinstance(exc, cattrs.BaseValidationError) else str(exc)
        _drop_frames(exc)
        return f"body does not fit {TAG_OF[cls]!r}: {detail}"[:500]
    return f"body does not fit {TAG_OF[cls]!r}"


def _drop_frames(exc: BaseException) -> None:
    """Clear the locals of every frame in ``exc``'s tracebacks (sub-errors and causes included).

    cattrs' detailed errors sit in reference cycles (a caught sub-error's traceback holds the frame
    whose error list holds it) with the hostile body in those frames: left alone, only the cyclic
    collector frees them, late, and a client sending large malformed frames grew the daemon's
    memory by hundreds of MB (chaos/fuzz_frames.py). Cleared, they are freed at once."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        e.__traceback__ = None
        stack += [x for x in (e.__cause__, e.__context__) if x is not None]
        stack += list(getattr(e, "exceptions", ()))


def try_peek_header(frame: bytes) -> tuple[str | None, str | None]:
    """Best effort (msg_id, sender) of a frame that failed to decode, to address an error reply."""
    try:
        raw = msgpack.unpackb(frame, raw=False, strict_map_key=False)
        msg_id, sender = raw[3], raw[5]
        return (msg_id if isinstance(msg_id, str) else None, sender if isinstance(sender, str) else None)
    except Exception:
        return (None, None)


def event_to_json_obj(event: TypedEvent) -> dict:
    """An event as the JSON object of DESIGN §4.4: ``type`` plus its fields."""
    data = converter.unstructure(event)
    return {"type": type(event).TYPE, **data}


def event_from_json_obj(obj: dict) -> Event:
    # cattrs structures unions at run time, but its signature only admits classes (type[T]).
    return converter.structure(obj, Event)  # type: ignore[arg-type]

