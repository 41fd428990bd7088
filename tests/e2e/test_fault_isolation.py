"""Failure isolation: a fault in one message costs that message, never another session's turn.

Faults are injected for real — a handler-table entry that raises, or an actor subclass whose own
background task raises (an actor that really dies) — while turns stream on the demo provider.
"""
import pytest
import trio
import zmq

from actors.planner.actor import PlannerActor
from actors.session.actor import SessionActor
from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from protocol.canonical import Role, StopReason
from protocol.codec import Envelope, decode, encode, new_id
from protocol.errors import RemoteError
from protocol.messages import (
    Ack, CostReport, Failure, GetCost, GetHistory, GetStatus, GetTrace, ListSessions, Ping, Pong, ShowRules,
    StatusReport,
)
from protocol.transport import open_zmq_socket

TERMINAL_TYPES = {ev.TurnCompleted.TYPE, ev.TurnFailed.TYPE, ev.TurnCancelled.TYPE}
FAULTS = 8   # more than the supervisor's restart budget (5 within 30 s)


class Detonator:
    """Mixin: the actor dies outside its handlers (a background task raises) when told to."""

    async def setup(self, nursery):
        await super().setup(nursery)
        self.detonate = trio.Event()
        nursery.start_soon(self._bomb)

    async def _bomb(self):
        await self.detonate.wait()
        raise RuntimeError(f"{type(self).__name__} died outside its handlers")


class FragileSession(Detonator, SessionActor):
    pass


class FragilePlanner(Detonator, PlannerActor):
    pass


@pytest.fixture
async def start_daemon(nursery, paths, wire_mode):
    started = []

    async def start(delay=0.02, **kw):
        d = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0), wire_mode=wire_mode, demo_chunk_delay=delay, **kw)
        await nursery.start(d.run)
        started.append(d)
        return d

    yield start
    for d in started:
        d.request_stop("test over")


async def _boom(env):
    raise RuntimeError("injected handler fault")


def _terminal_count(daemon, turn_id):
    return sum(e["type"] in TERMINAL_TYPES for e in daemon.store.events(turn_id=turn_id))


# Each actor, and a message it handles that the injected fault replaces (control keeps its Ping:
# clients use it for liveness).
INJECTIONS = [("session", ListSessions, ListSessions()), ("router", ShowRules, ShowRules()),
              ("cost", GetCost, GetCost()), ("availability", Ping, Ping()), ("planner", Ping, Ping()),
              ("worker", Ping, Ping()), ("control", GetTrace, GetTrace("t_x"))]


@pytest.mark.parametrize("actor,cls,body", INJECTIONS, ids=[i[0] for i in INJECTIONS])
async def test_a_handler_fault_in_any_actor_fails_only_that_request_and_a_streaming_turn_completes_in_full(
        start_daemon, actor, cls, body):
    daemon = await start_daemon(delay=0.01)
    daemon.actors[actor].table[cls] = _boom
    async with open_client(daemon.paths.endpoint) as client:
        sid = (await client.open_session()).session_id
        codes, streamed = [], []
        async with client.turn(sid, "explain failure isolation") as turn:
            async for e in turn:
                if isinstance(e, ev.TextDelta):
                    if not codes:  # mid-stream: fault the actor more often than the restart budget allows
                        for _ in range(FAULTS):
                            with pytest.raises(RemoteError) as info:
                                await client.request(actor, body)
                            codes.append(info.value.code)
                    streamed.append(e.text)
        assert codes == ["internal_error"] * FAULTS
        assert isinstance(turn.terminal, ev.TurnCompleted)
        history = await client.request("session", GetHistory(sid))
        answer = history.messages[-1]
        assert answer.role is Role.ASSISTANT and answer.stop_reason is StopReason.END_TURN
        assert "".join(streamed) == answer.text and answer.text.startswith("[demo model")
        assert _terminal_count(daemon, turn.turn_id) == 1
        status = await client.status()
        assert all(a["restarts"] == 0 and a["status"] == "running" for a in status.actors.values())
        assert status.actors[actor]["faults"] == FAULTS
        _, events = await _run(client, sid, "and the daemon keeps serving")
        assert isinstance(events[-1], ev.TurnCompleted)


async def test_when_the_session_actor_dies_every_running_turn_ends_once_with_internal_error_and_the_planner_stops(
        start_daemon):
    daemon = await start_daemon(session_class=FragileSession)
    session, planner = daemon.actors["session"], daemon.actors["planner"]
    async with open_client(daemon.paths.endpoint) as client:
        sids = [(await client.open_session()).session_id for _ in range(2)]
        terminals = {}

        async def one(sid, streaming):
            async with client.turn(sid, f"long answer for {sid}") as turn:
                async for e in turn:
                    if isinstance(e, ev.TextDelta):
                        streaming.set()
            terminals[sid] = (turn.turn_id, turn.terminal)

        async with trio.open_nursery() as n:
            events = []
            for sid in sids:
                events.append(trio.Event())
                n.start_soon(one, sid, events[-1])
            for e in events:
                await e.wait()
            assert len(planner.turns) == 2
            session.detonate.set()
        for sid in sids:
            turn_id, terminal = terminals[sid]
            assert isinstance(terminal, ev.TurnFailed) and terminal.error == "internal_error"
            assert "session actor failed" in terminal.message
            assert _terminal_count(daemon, turn_id) == 1
        with trio.fail_after(10):
            while planner.turns:  # StopTurn reached the planner: nothing keeps streaming or billing
                await trio.sleep(0.01)
        assert daemon.supervisor.state["session"].restarts == 1
        _, after = await _run(client, sids[0], "still here?")  # the session is not stuck in turn_in_progress
        assert isinstance(after[-1], ev.TurnCompleted)


async def test_when_the_planner_dies_the_turn_fails_with_internal_error_and_the_session_takes_the_next_turn(
        start_daemon):
    daemon = await start_daemon(planner_class=FragilePlanner)
    async with open_client(daemon.paths.endpoint) as client:
        sid = (await client.open_session()).session_id
        async with client.turn(sid, "a long answer please") as turn:
            async for e in turn:
                if isinstance(e, ev.TextDelta):
                    daemon.actors["planner"].detonate.set()
        assert isinstance(turn.terminal, ev.TurnFailed) and turn.terminal.error == "internal_error"
        assert "planner actor stopped" in turn.terminal.message
        assert _terminal_count(daemon, turn.turn_id) == 1
        _, after = await _run(client, sid, "next turn")
        assert isinstance(after[-1], ev.TurnCompleted)
        assert daemon.supervisor.state["planner"].restarts == 1


async def test_an_error_reply_to_a_spoofed_actor_sender_is_dropped_never_bounced(start_daemon):
    """Issue 11 H3: one frame whose sender is an actor address must not start a ping-pong."""
    daemon = await start_daemon()
    session, control = daemon.actors["session"], daemon.actors["control"]
    spoofed = daemon.system.address("control")
    frames = [Envelope(Failure("x", "spoofed failure"), "session", spoofed, new_id()),
              Envelope(Pong(b"late"), "session", spoofed, new_id(), "m-unknown"),
              Envelope(Ack(), "session", spoofed, new_id())]          # unsupported → one Failure to control
    # Delivered inside the daemon, as a misbehaving actor or peer would: the client socket refuses
    # actor vocabulary before any actor sees it (tests/e2e/test_trust_boundaries.py).
    for env in frames:
        await daemon.system.deliver(env)
    async with open_zmq_socket(zmq.Context.instance(), zmq.DEALER, connect=daemon.paths.endpoint) as sock:

        async def status():
            await sock.send([encode(Envelope(GetStatus(), "control", "raw/_reply", new_id()))])
            with trio.fail_after(10):
                reply = decode((await sock.receive())[-1])
            assert isinstance(reply.body, StatusReport)
            return reply.body

        await status()
        first = await status()
        assert first.actors["session"]["dropped"] == 2 and first.actors["control"]["dropped"] == 1
        before = session.handled + control.handled
        second = await status()
        # Only the status traffic itself: GetActorStatus + GetSessionStats to session, GetStatus +
        # GetActorStatus to control. Anything more would be a ping-pong still going on.
        assert session.handled + control.handled - before == 4
        assert second.actors["session"]["dropped"] == 2 and second.actors["control"]["dropped"] == 1
    async with open_client(daemon.paths.endpoint) as client:
        assert isinstance(await client.request("cost", GetCost()), CostReport)


async def _run(client, sid, text):
    events = []
    async with client.turn(sid, text) as turn:
        async for e in turn:
            events.append(e)
    return turn, events


async def test_thousands_of_spoofed_requests_cannot_wedge_two_actors_against_each_other(start_daemon):
    """Issue 11 H3: 3,000 such frames filled both mailboxes with bouncing errors and deadlocked the
    daemon. Now each gets one error reply, which the spoofed 'requester' drops."""
    daemon = await start_daemon()
    control = daemon.actors["control"]
    spoofed = daemon.system.address("control")
    for _ in range(3000):  # inside the daemon: the client socket refuses actor vocabulary outright
        await daemon.system.deliver(Envelope(Ack(), "session", spoofed, new_id()))
    async with open_client(daemon.paths.endpoint) as client:
        with trio.fail_after(30):
            while control.dropped < 3000:
                await trio.sleep(0.01)
            status = await client.status()
        assert status.actors["session"]["dropped"] == 0 and status.actors["control"]["dropped"] == 3000
        _, events = await _run(client, (await client.open_session()).session_id, "still serving")
        assert isinstance(events[-1], ev.TurnCompleted)


async def test_poisonous_well_formed_messages_repeated_never_exhaust_the_restart_budget(start_daemon):
    """Issue 11 H1: a usage record with cost_usd 'abc' or a 2**63 token count crashed the cost actor;
    six of them made the supervisor give up and the daemon exit. Now each is one answered fault."""
    from protocol.canonical import Usage
    from protocol.messages import RecordUsage

    daemon = await start_daemon()
    poison = [RecordUsage("s_x", "t_x", "demo:steady", "planner", Usage(cost_usd="abc")),
              RecordUsage("s_x", "t_x", "demo:steady", "planner", Usage(input_tokens=2**63))]
    for i in range(12):  # the cost actor cleans each record itself (out-of-range values → unknown)
        await daemon.system.tell("cost", poison[i % 2], sender=daemon.system.address("planner"))
    async with open_client(daemon.paths.endpoint) as client:
        report = await client.request("cost", GetCost())
        assert isinstance(report, CostReport) and report.total_usd == "0"
        status = await client.status()
        assert status.actors["cost"]["restarts"] == 0 and status.actors["cost"]["faults"] == 0
        assert daemon.actors["cost"].handled >= 13
        _, events = await _run(client, (await client.open_session()).session_id, "costs still add up")
        assert isinstance(events[-1], ev.TurnCompleted)


class ForgetfulPlanner(PlannerActor):
    """Loses the outcome of its first turn on the way (as a vanished peer or a full mailbox would)."""

    lost = 0

    async def _send_outcome(self, turn, outcome, **kw):
        if self.name == "planner" and not ForgetfulPlanner.lost:
            ForgetfulPlanner.lost += 1
            turn.done.set()
            return
        await super()._send_outcome(turn, outcome, **kw)


async def test_a_turn_whose_outcome_is_lost_ends_with_internal_error_instead_of_holding_the_session(start_daemon):
    ForgetfulPlanner.lost = 0
    daemon = await start_daemon(delay=0.001, planner_class=ForgetfulPlanner)
    daemon.session.liveness_s = 0.2
    async with open_client(daemon.paths.endpoint) as client:
        sid = (await client.open_session()).session_id
        turn, _ = await _run(client, sid, "this answer gets lost")
        assert isinstance(turn.terminal, ev.TurnFailed) and turn.terminal.error == "internal_error"
        assert "no longer runs this turn" in turn.terminal.message
        assert _terminal_count(daemon, turn.turn_id) == 1
        _, after = await _run(client, sid, "and this one arrives")
        assert isinstance(after[-1], ev.TurnCompleted)
