"""The session actor's idle-session bookkeeping (actors/session/idle.py): least recently used
first, a running byte total that always equals a full count, O(1) per operation."""
from actors.session.idle import IdleSessions, held_bytes
from actors.session.state import SessionState
from protocol.canonical import Message, Role, TextBlock


def session(sid: str, messages: int) -> SessionState:
    state = SessionState(sid, None)
    state.messages = [Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, (TextBlock(f"{sid} says {i}"),))
                      for i in range(messages)]
    return state


def test_the_coldest_idle_session_is_the_least_recently_added_or_touched():
    idle = IdleSessions()
    a, b, c = session("a", 2), session("b", 2), session("c", 2)
    for s in (a, b, c):
        idle.add(s)
    assert idle.coldest() == "a"
    idle.touch("a")
    assert list(idle) == ["b", "c", "a"]
    idle.add(b)                       # its turn ended: the most recently used now
    assert list(idle) == ["c", "a", "b"]
    idle.touch("unknown")             # a session running a turn is not in the list: nothing moves
    assert list(idle) == ["c", "a", "b"]


def test_the_byte_total_follows_adds_drops_and_a_history_that_grew_while_its_turn_ran():
    idle = IdleSessions()
    a, b = session("a", 2), session("b", 6)
    idle.add(a)
    idle.add(b)
    assert idle.bytes == held_bytes(a) + held_bytes(b) and held_bytes(b) > held_bytes(a) > 0
    idle.drop("b")                    # a turn starts on b
    b.messages.append(Message(Role.USER, (TextBlock("more"),)))
    idle.add(b)                       # and ends: counted afresh, once
    idle.add(a)                       # added twice: still counted once
    assert idle.bytes == held_bytes(a) + held_bytes(b)
    idle.drop("a")
    idle.drop("a")
    assert idle.bytes == held_bytes(b) and len(idle) == 1 and "a" not in idle
    idle.drop("b")
    assert idle.bytes == 0 and idle.coldest() is None
