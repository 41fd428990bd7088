"""Text deltas coalesced per network read: fewer messages, every byte in order."""
import trio
import trio.testing

from actors.planner.relay import DeltaRelay
from protocol import events as ev


async def test_a_burst_of_chunks_goes_out_as_one_delta_and_every_byte_arrives_in_order():
    sent: list = []

    async def send(delta):
        sent.append(delta)

    relay = DeltaRelay("t_1", send)
    chunks = [f"<{i}>" for i in range(1000)]
    async with trio.open_nursery() as n:
        n.start_soon(relay.run)
        await trio.testing.wait_all_tasks_blocked()
        for burst in (chunks[:1], chunks[1:400], chunks[400:]):  # three network reads
            for c in burst:
                relay.add(ev.TextDelta, c)
            await trio.testing.wait_all_tasks_blocked()  # the next read: the relay runs now
        relay.close()
    assert "".join(d.text for d in sent) == "".join(chunks)
    assert [len(d.text) for d in sent] == [len("".join(b)) for b in (chunks[:1], chunks[1:400], chunks[400:])]
    assert all(d.turn_id == "t_1" and type(d) is ev.TextDelta for d in sent)


async def test_thinking_between_text_keeps_its_place():
    sent: list = []

    async def send(delta):
        sent.append(delta)

    relay = DeltaRelay("t_1", send)
    async with trio.open_nursery() as n:
        n.start_soon(relay.run)
        for kind, text in [(ev.TextDelta, "a"), (ev.TextDelta, "b"), (ev.ThinkingDelta, "hm"),
                           (ev.ThinkingDelta, "m"), (ev.TextDelta, "c")]:
            relay.add(kind, text)
        relay.close()
    assert [(type(d).__name__, d.text) for d in sent] == [("TextDelta", "ab"), ("ThinkingDelta", "hmm"),
                                                          ("TextDelta", "c")]


async def test_deltas_queued_while_a_send_waits_follow_it_in_order():
    sent: list = []
    gate = trio.Event()

    async def slow_send(delta):
        await gate.wait()  # a full mailbox downstream
        sent.append(delta.text)

    relay = DeltaRelay("t_1", slow_send)
    async with trio.open_nursery() as n:
        n.start_soon(relay.run)
        relay.add(ev.TextDelta, "1")
        await trio.testing.wait_all_tasks_blocked()
        for t in "2345":
            relay.add(ev.TextDelta, t)
        gate.set()
        relay.close()
    assert "".join(sent) == "12345" and sent[0] == "1"
