"""The client library waits for a late reply as long as the daemon is alive, and says so when it is not."""
import pytest
import trio
import trio.testing

from actors.runtime.kernel import Actor, ActorSystem
from actors.runtime.node import Node
from orchestrator.client import DaemonUnreachable, open_client
from protocol.messages import Ping, Pong, ShowModel

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


async def serve(nursery, short_tmp, *, control: bool) -> str:
    system = ActorSystem("daemon")
    endpoint = f"ipc://{short_tmp}/d.sock"
    await nursery.start(Node(system).serve, endpoint)
    await nursery.start(SlowSession(system, 40).run)
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
        endpoint = await serve(n, short_tmp, control=False)  # the liveness Ping goes unanswered
        async with open_client(endpoint, check=False) as client:
            with pytest.raises(DaemonUnreachable):
                await client.request("session", ShowModel("s_1"), timeout=30)
        n.cancel_scope.cancel()
