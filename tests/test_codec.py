"""The wire format: every message class round-trips; bad frames become typed errors."""
import enum
import typing

import attrs
import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from protocol import events, messages
from protocol.codec import PROTOCOL_VERSION, Envelope, decode, encode, event_from_json_obj, event_to_json_obj
from protocol.errors import FrameError, FrameTooLarge, MalformedFrame, NotMsgpack, UnknownTag, UnsupportedVersion


def sample(tp):
    """A representative non-default value of a type, for round-trip tests."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is str:
        return "héllo"
    if tp is int:
        return 7
    if tp is float:
        return 1.5
    if tp is bool:
        return True
    if tp is bytes:
        return b"\x00\xff"
    if tp is dict or origin is dict:
        return {"k": "v", "n": [1, 2]}
    if tp is typing.Any or tp is object:
        return {"any": 1}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (sample(args[0]),)
        return tuple(sample(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        non_none = [a for a in args if a is not type(None)]
        return sample(non_none[0])
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return list(tp)[-1]
    if attrs.has(tp):
        attrs.resolve_types(tp)
        return tp(**{f.name: sample(f.type) for f in attrs.fields(tp) if f.init})
    raise TypeError(f"no sample for {tp!r}")


ALL_MESSAGES = sorted(messages.TAGS.items())


@pytest.mark.parametrize("tag,cls", ALL_MESSAGES, ids=[t for t, _ in ALL_MESSAGES])
def test_every_message_class_round_trips_through_the_codec(tag, cls):
    body = sample(cls)
    env = Envelope(body, "node/session", "client/x", "m1", "c1")
    assert decode(encode(env)) == env


@pytest.mark.parametrize("cls", events.EVENT_TYPES, ids=[c.TYPE for c in events.EVENT_TYPES])
def test_every_event_round_trips_as_a_notice_and_as_json(cls):
    event = sample(cls)
    env = Envelope(messages.EventNotice("s", event), "c/x")
    assert decode(encode(env)).body.event == event
    obj = event_to_json_obj(event)
    assert obj["type"] == cls.TYPE
    assert event_from_json_obj(obj) == event


def test_wire_tags_are_unique_and_stable():
    assert len(set(messages.TAGS)) == len(messages.TAGS)
    # Renaming a class must never change its tag: pin a few.
    assert messages.TAG_OF[messages.StartTurn] == "turn.start"
    assert messages.TAG_OF[messages.Failure] == "failure"
    assert messages.TAG_OF[messages.EventNotice] == "turn.event"


def test_golden_bytes_of_a_ping():
    env = Envelope(messages.Ping(b"\x01"), "n/control", "c/cli", "id1", None)
    assert encode(env) == bytes.fromhex("9801 00 a470696e67 a3696431 c0 a5632f636c69 a96e2f636f6e74726f6c "
                                        "81 a77061796c6f6164 c40101".replace(" ", ""))


def test_golden_bytes_of_a_text_delta_notice():
    env = Envelope(messages.EventNotice("s", events.TextDelta("t", "hi")), "c/x", "n/session", "m", "r")
    assert encode(env) == msgpack.packb(
        [1, 0, "turn.event", "m", "r", "n/session", "c/x",
         {"session_id": "s", "event": {"turn_id": "t", "text": "hi", "type": "text.delta"}}], use_bin_type=True)


def test_oversized_frame_is_rejected_with_a_typed_error():
    with pytest.raises(FrameTooLarge):
        decode(b"\x00" * (16 * 1024 * 1024 + 1))


def test_garbage_is_not_msgpack():
    with pytest.raises(NotMsgpack):
        decode(b"\xc1\xc1\xc1")


def test_unknown_tag_is_rejected():
    with pytest.raises(UnknownTag):
        decode(msgpack.packb([1, 0, "no.such", "m", None, "a", "b", {}]))


def test_newer_major_version_is_rejected():
    with pytest.raises(UnsupportedVersion):
        decode(msgpack.packb([PROTOCOL_VERSION[0] + 1, 0, "ping", "m", None, "a", "b", {}]))


def test_a_newer_minor_version_is_accepted():
    env = decode(msgpack.packb([1, 9, "ping", "m", None, "a", "b", {"payload": b""}]))
    assert env.version == (1, 9)


def test_body_of_the_wrong_shape_is_malformed_and_says_why():
    with pytest.raises(MalformedFrame, match="turn.start"):
        decode(msgpack.packb([1, 0, "turn.start", "m", None, "a", "b", {"session_id": 3}]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_never_raise_anything_but_frame_errors(data):
    try:
        decode(data)
    except FrameError:
        pass


json_like = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=8)
                         | st.binary(max_size=8),
                         lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                         max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_like, min_size=0, max_size=9), st.sampled_from(sorted(messages.TAGS)))
def test_random_envelopes_never_raise_anything_but_frame_errors(items, tag):
    if len(items) == 8:
        items[2] = tag
    try:
        decode(msgpack.packb(items, use_bin_type=True))
    except FrameError:
        pass
