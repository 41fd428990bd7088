"""The SSE decoder reads a stream in whatever pieces the network hands over: the events, their
order and every byte of their data do not depend on where the reads split it."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.providers._sse import SSEDecoder, SSEvent

_BREAK = re.compile(r"\r\n|\r|\n")


def reference(stream: bytes) -> list[SSEvent]:
    """The event-stream rules written plainly over the whole stream at once, line by line."""
    text = stream.decode("utf-8", "replace").removeprefix("\ufeff")
    lines = _BREAK.split(text)[:-1]   # the text after the last line break is an unfinished line
    out, event, data = [], None, []
    for line in lines:
        if not line:
            if data:
                out.append((event, "\n".join(data)))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    return out


def decode_in_pieces(stream: bytes, cuts: list[int]) -> list[SSEvent]:
    decoder, out, start = SSEDecoder(), [], 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    return out


def pieces(stream: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(stream)), max_size=12)


_line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)
_event = st.tuples(st.none() | st.sampled_from(["message_start", "content_block_delta", "ping", "ε"]),
                   st.lists(_line_text, min_size=1, max_size=3),
                   st.booleans())   # a comment line before the event


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[SSEvent]]:
    """A well-formed stream in one line-break style, and the events it carries. (Mixed styles are
    ambiguous by construction — CR then LF is one CRLF — and are covered by the reference test.)"""
    events = draw(st.lists(_event, max_size=6))
    newline = st.just(draw(st.sampled_from(["\n", "\r\n", "\r"])))
    parts, expected = [], []
    if draw(st.booleans()):
        parts.append("\ufeff")
    for name, data, comment in events:
        if comment:
            parts.append(":keep-alive" + draw(newline))
        if name is not None:
            parts.append(f"event: {name}" + draw(newline))
        for line in data:
            parts.append(f"data: {line}" + draw(newline))
        parts.append(draw(newline))
        expected.append((name, "\n".join(data)))
    return "".join(parts).encode(), expected


@settings(max_examples=300)
@given(st.data())
def test_events_and_their_bytes_do_not_depend_on_where_the_reads_split_the_stream(data):
    stream, expected = data.draw(streams())
    cuts = data.draw(pieces(stream))
    assert decode_in_pieces(stream, cuts) == expected


@settings(max_examples=300)
@given(st.data())
def test_any_bytes_in_any_pieces_decode_as_the_whole_stream_read_line_by_line(data):
    alphabet = st.sampled_from([b"\n", b"\r", b"\r\n", b":", b" ", b"data", b"event", b"x", b"\xc3\xa9",
                                b"\xe2\x82", b"\xac", b"\xef\xbb\xbf", b"data: {}"])
    stream = b"".join(data.draw(st.lists(alphabet, max_size=40)))
    cuts = data.draw(pieces(stream))
    assert decode_in_pieces(stream, cuts) == reference(stream)


def test_a_multibyte_character_cut_between_two_reads_arrives_whole():
    stream = "data: naïve €\n\n".encode()
    for cut in range(len(stream) + 1):
        assert decode_in_pieces(stream, [cut]) == [(None, "naïve €")]


def test_a_crlf_split_across_two_reads_is_one_line_break_not_a_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [(None, "a\nb")]


def test_an_event_the_stream_never_closed_with_a_blank_line_is_not_dispatched():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"type": "message_stop"}\n') == []
    assert decoder.feed(b"") == []


def test_one_read_with_many_events_returns_them_all_in_order():
    stream = b"".join(b"data: %d\n\n" % i for i in range(50))
    assert SSEDecoder().feed(stream) == [(None, str(i)) for i in range(50)]
