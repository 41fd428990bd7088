"""A socket's owner task may hand received messages to a plain function (``set_dispatch``): the
client uses it so a reply wakes its requester without the receive loop's task switch. Nothing
about order or backpressure may change."""
import trio
import zmq

from protocol import events as ev
from protocol.canonical import Usage
from protocol.codec import Envelope, decode, encode
from protocol.messages import EventNotice, StartTurn, TurnAccepted
from protocol.transport import open_zmq_socket

from orchestrator.client import open_client


async def test_a_dispatched_message_skips_receive_and_a_refused_one_keeps_its_place(short_tmp):
    ctx = zmq.Context.instance()
    endpoint = f"ipc://{short_tmp}/d.sock"
    handled: list[bytes] = []

    def dispatch(frames: list[bytes]) -> bool:
        if frames[-1].startswith(b"refuse"):
            return False
        handled.append(frames[-1])
        return True

    async with open_zmq_socket(ctx, zmq.PAIR, bind=endpoint) as a, \
            open_zmq_socket(ctx, zmq.PAIR, connect=endpoint) as b:
        b.set_dispatch(dispatch)
        for payload in (b"one", b"refuse two", b"three"):
            await a.send([payload])
        with trio.fail_after(10):
            while b.queued < 2:   # nobody receives yet: what the owner did alone
                await trio.sleep(0.001)
            got = [await b.receive() for _ in range(2)]
    # Once a message waits for receive(), the ones after it queue behind it rather than being
    # dispatched past it; "one" was handled by the owner alone and never reached receive().
    assert handled == [b"one"]
    assert got == [[b"refuse two"], [b"three"]]


async def test_a_turn_whose_event_buffer_overflows_still_gets_every_event_in_order(short_tmp):
    """More events than the turn's buffer holds (4,096) arrive before the consumer reads: the owner's
    dispatch refuses the first that does not fit and leaves everything after it to the receive
    loop, which waits for room (backpressure); the consumer still sees every event, in order."""
    ctx = zmq.Context.instance()
    endpoint = f"ipc://{short_tmp}/fake.sock"
    count = 4_500
    async with open_zmq_socket(ctx, zmq.ROUTER, bind=endpoint) as daemon, trio.open_nursery() as n:
        async def fake_daemon() -> None:
            rid, payload = await daemon.receive()
            env = decode(payload)
            assert isinstance(env.body, StartTurn)
            reply = Envelope(TurnAccepted("s_1", "t_1"), env.sender, "d/session", "r1", env.msg_id)
            await daemon.send([rid, encode(reply)])
            for i in range(count):
                await daemon.send([rid, encode(Envelope(EventNotice("s_1", ev.Banner(str(i), "t_1")),
                                                        env.sender, "d/session", f"e{i}"))])
            done = EventNotice("s_1", ev.TurnCompleted("s_1", "t_1", "m", Usage()))
            await daemon.send([rid, encode(Envelope(done, env.sender, "d/session", "end"))])

        n.start_soon(fake_daemon)
        async with open_client(endpoint, check=False) as client:
            async with client.turn("s_1", "hi") as turn:
                with trio.fail_after(30):
                    while not client._loop_behind:   # the buffer is full: the loop waits for room
                        await trio.sleep(0.001)
                    seen = [e async for e in turn]
    assert [e.text for e in seen[:-1]] == [str(i) for i in range(count)]
    assert isinstance(seen[-1], ev.TurnCompleted)
