"""What waits for a client that stopped reading (sans-IO: the policy alone, no sockets)."""
from actors.runtime.streams import PARK_HARD_LIMIT, PARK_LIMIT, ClientStreams
from protocol import events as ev
from protocol.canonical import Usage
from protocol.codec import Envelope
from protocol.messages import EventNotice, Pong

RID = b"\x00abcd"


def notice(event) -> Envelope:
    return Envelope(EventNotice("s_1", event), "~c.00/client", "n/session")


def delta(i: int, turn: str = "t_1") -> Envelope:
    return notice(ev.TextDelta(turn, f"{i} "))


def done(turn: str = "t_1") -> Envelope:
    return notice(ev.TurnCompleted("s_1", turn, "m", Usage()))


def test_deltas_of_a_congested_turn_are_counted_and_reported_once_before_the_terminal_event():
    streams = ClientStreams()
    first = delta(0)
    assert streams.admit(RID, first) == [first]  # not congested: passes as it is
    for i in range(1, 4):
        assert streams.admit(RID, delta(i), congested=True) == []
    assert streams.admit(RID, delta(4)) == []  # the pipe has room again, but the turn has a hole now
    kept = streams.admit(RID, done())
    assert [type(e.body.event) for e in kept] == [ev.StreamOverflow, ev.TurnCompleted]
    assert kept[0].body.event.missed_events == 4 and kept[0].recipient == done().recipient
    other = delta(0, "t_2")
    assert streams.admit(RID, other) == [other]
    assert streams.congested_turns == 0 and streams.overflows == 1


def test_other_events_and_replies_wait_up_to_the_limit_and_terminal_events_up_to_the_hard_limit():
    streams = ClientStreams()
    banner = notice(ev.Banner("hi", "t_1"))
    pong = Envelope(Pong(b"x"), "~c.00/client", "n/control")
    assert streams.admit(RID, banner, congested=True, waiting=PARK_LIMIT - 1) == [banner]
    assert streams.admit(RID, pong, congested=True, waiting=PARK_LIMIT - 1) == [pong]
    assert streams.admit(RID, banner, congested=True, waiting=PARK_LIMIT) == []
    assert streams.admit(RID, pong, congested=True, waiting=PARK_LIMIT) == []
    kept = streams.admit(RID, done(), congested=True, waiting=PARK_LIMIT)
    assert [type(e.body.event) for e in kept] == [ev.StreamOverflow, ev.TurnCompleted]
    assert streams.admit(RID, done("t_9"), congested=True, waiting=PARK_HARD_LIMIT) == []


def test_a_client_that_left_is_forgotten():
    streams = ClientStreams()
    streams.admit(RID, delta(1), congested=True)
    streams.gone(RID)
    assert streams.congested_turns == 0
    assert len(streams.admit(RID, done())) == 1
