"""The client library waits for a late reply as long as the daemon is alive, and says so when it is not."""
import math

import pytest
import trio
import trio.testing

from actors.runtime.kernel import Actor, ActorSystem
from actors.runtime.node import Node
from orchestrator.client import DaemonUnreachable, open_client
from protocol import events as ev
from protocol.messages import EventNotice, Ping, Pong, ShowModel

from .test_kernel import Echo


@pytest.fixture
def slow_clock():
    # Virtual time jumps only after the tasks have sat idle for a real 50 ms, so a ZeroMQ frame in
    # flight between the client and the node is delivered before a timeout can fire.
    return trio.testing.MockClock(autojump_threshold=0.05)


class SlowSession(Actor):
    """A session actor whose answer takes 40 s: longer than the client's 30 s request timeout."""

    name = "session"

    def __init__(self, system, answer_after: float):
        super().__init__(system)
        self.answer_after = answer_after

    def handlers(self):
        return {ShowModel: self.on_show}

    async def on_show(self, env):
        await trio.sleep(self.answer_after)
        return Pong(b"late but here")


class HungControl(Actor):
    """A control actor that never answers: the daemon looks alive to ZeroMQ but is not."""

    name = "control"

    def handlers(self):
        return {Ping: self.on_ping}

    async def on_ping(self, env):
        await trio.sleep_forever()


async def serve(nursery, short_tmp, *, control: bool, system: ActorSystem | None = None,
                answer_after: float = 40) -> str:
    system = system or ActorSystem("daemon")
    endpoint = f"ipc://{short_tmp}/d.sock"
    await nursery.start(Node(system).serve, endpoint)
    await nursery.start(SlowSession(system, answer_after).run)
    if control:
        control_actor = Echo(system)
        control_actor.name = "control"
        await nursery.start(control_actor.run)
    else:
        await nursery.start(HungControl(system).run)
    return endpoint


async def test_a_reply_later_than_the_timeout_arrives_while_the_daemon_answers_pings(short_tmp, slow_clock):
    async with trio.open_nursery() as n:
        endpoint = await serve(n, short_tmp, control=True)
        async with open_client(endpoint, check=False) as client:
            reply = await client.request("session", ShowModel("s_1"), timeout=30)
        assert reply == Pong(b"late but here")
        n.cancel_scope.cancel()


async def test_a_daemon_that_answers_nothing_is_reported_unreachable(short_tmp, slow_clock):
    async with trio.open_nursery() as n:
        # Neither the request nor the liveness Ping is ever answered, and nothing else arrives.
        endpoint = await serve(n, short_tmp, control=False, answer_after=math.inf)
        async with open_client(endpoint, check=False) as client:
            with pytest.raises(DaemonUnreachable):
                await client.request("session", ShowModel("s_1"), timeout=30)
        n.cancel_scope.cancel()


async def test_a_daemon_too_busy_to_answer_a_ping_but_still_sending_is_waited_for(short_tmp, slow_clock):
    system = ActorSystem("daemon")
    async with trio.open_nursery() as n:
        endpoint = await serve(n, short_tmp, control=False, system=system)  # Pings go unanswered
        async with open_client(endpoint, check=False) as client:
            async def other_turns_stream() -> None:
                # Other sessions' events keep arriving on this connection: the daemon is alive.
                while True:
                    await trio.sleep(1)
                    await system.tell(client.address, EventNotice("s_other", ev.Banner("busy", "t_other")))

            async with trio.open_nursery() as chatter:
                await client.request("session", ShowModel("s_warm"), timeout=50)  # the node learns our route
                chatter.start_soon(other_turns_stream)
                reply = await client.request("session", ShowModel("s_1"), timeout=30)
                chatter.cancel_scope.cancel()
        assert reply == Pong(b"late but here")
        n.cancel_scope.cancel()
