"""The client library waits for a late reply as long as the daemon is alive, and says so when it is not."""
import math

import pytest
import trio
import trio.testing

from actors.runtime.kernel import Actor, ActorSystem
from actors.runtime.node import Node
from orchestrator.client import DaemonUnreachable, open_client
from protocol import events as ev
from protocol.messages import EventNotice, Ping, Pong, ShowModel, StartTurn, TurnAccepted

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


class StuckSession(Actor):
    """A session actor that takes requests and turns and never answers them (nor sends events)."""

    name = "session"

    def __init__(self, system):
        super().__init__(system)
        self.asked = trio.Event()

    def handlers(self):
        return {ShowModel: self.on_any, StartTurn: self.on_start}

    async def on_any(self, env):
        self.asked.set()
        await trio.sleep_forever()

    async def on_start(self, env):
        self.asked.set()
        return TurnAccepted(env.body.session_id, "t_forgotten")


class InProcessDaemon:
    """A node answering Pings and a stuck session actor; ``stop()`` closes the node first, the way a
    daemon that dies goes away: nothing is answered on the way out."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.system = ActorSystem("daemon")
        self.session = StuckSession(self.system)
        self._node_scope = trio.CancelScope()
        self._scope = trio.CancelScope()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async def node(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with self._node_scope:
                await Node(self.system, answer_pings=True).serve(self.endpoint, task_status=task_status)

        with self._scope:
            async with trio.open_nursery() as n:
                await n.start(node)
                await n.start(self.session.run)
                task_status.started()

    def stop(self) -> None:
        """The node goes; the actors stay until ``close()``, so nothing answers on the way out."""
        self._node_scope.cancel()

    def close(self) -> None:
        self._scope.cancel()


async def test_a_request_in_flight_when_the_daemon_stops_fails_without_waiting_for_its_timeout(short_tmp):
    daemon = InProcessDaemon(f"ipc://{short_tmp}/d.sock")
    async with trio.open_nursery() as n:
        await n.start(daemon.run)
        async with open_client(daemon.endpoint) as client:
            async def stop_once_asked():
                await daemon.session.asked.wait()
                daemon.stop()

            n.start_soon(stop_once_asked)
            with trio.fail_after(20), pytest.raises(DaemonUnreachable, match="lost the daemon"):
                # An unbounded timeout: only the dropped connection can end this wait.
                await client.request("session", ShowModel("s_1"), timeout=math.inf)
            # Later requests fail at once too, while nobody listens.
            with trio.fail_after(20), pytest.raises(DaemonUnreachable, match="lost the daemon"):
                await client.request("session", ShowModel("s_2"), timeout=math.inf)
        daemon.close()


async def test_a_turn_whose_daemon_restarted_is_reported_lost_not_waited_for(short_tmp):
    first, second = InProcessDaemon(f"ipc://{short_tmp}/d.sock"), InProcessDaemon(f"ipc://{short_tmp}/d.sock")
    async with trio.open_nursery() as n:
        await n.start(first.run)
        async with open_client(first.endpoint) as client:
            async with client.turn("s_1", "hello") as turn:
                first.stop()
                # The new daemon answers Pings at once, but it never heard of this turn: waiting for
                # its events would last forever.
                await n.start(second.run)
                with trio.fail_after(20), pytest.raises(DaemonUnreachable, match="lost the daemon during turn"):
                    async for _ in turn:
                        pass
        first.close()
        second.close()
