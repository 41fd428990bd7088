"""Issue 10 item 2: the daemon does not grow with its past. Idle sessions leave memory and come
back from the store on demand (the RSS figure over 20,000 sessions is in bench/memory_bench.py)."""
import trio

from actors.runtime.store import SEQ_CACHE_SIZE
from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from protocol.messages import GetHistory

SESSIONS = 2000
CONCURRENCY = 16
CACHED = 64


async def test_thousands_of_one_turn_sessions_stay_bounded_in_memory_and_an_evicted_one_continues(nursery, paths):
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0), demo_chunk_delay=0.0)
    await nursery.start(daemon.run)
    session = daemon.session
    session.max_cached = CACHED
    most = 0
    async with open_client(daemon.paths.endpoint) as client:
        first = (await client.open_session()).session_id
        async with client.turn(first, "my favourite colour is teal") as turn:
            async for _ in turn:
                pass
        assert isinstance(turn.terminal, ev.TurnCompleted)

        todo = iter(range(SESSIONS - 1))

        async def worker():
            nonlocal most
            for i in todo:
                sid = (await client.open_session()).session_id
                async with client.turn(sid, f"question number {i}") as t:
                    async for _ in t:
                        pass
                assert isinstance(t.terminal, ev.TurnCompleted)
                most = max(most, len(session.sessions))

        async with trio.open_nursery() as n:
            for _ in range(CONCURRENCY):
                n.start_soon(worker)

        assert most <= CACHED + CONCURRENCY          # idle sessions beyond the cap were evicted
        assert len(session.sessions) <= CACHED
        assert len(daemon.store._next_seq) <= SEQ_CACHE_SIZE
        assert first not in session.sessions
        assert not daemon.system._pending and not daemon.actors["planner"].turns
        async with client.turn(first, "what is my favourite colour?") as turn:  # reloads from the store
            async for _ in turn:
                pass
        assert isinstance(turn.terminal, ev.TurnCompleted)
        history = await client.request("session", GetHistory(first))
        assert [m.role.value for m in history.messages] == ["user", "assistant", "user", "assistant"]
        assert history.messages[0].text == "my favourite colour is teal"
        status = await client.status()
        assert status.sessions_open <= CACHED
    daemon.request_stop("test over")


async def test_a_model_swap_queued_during_a_turn_survives_the_session_leaving_memory(client, daemon):
    daemon.session.max_cached = 1
    sid = (await client.open_session()).session_id
    async with client.turn(sid, "first turn") as turn:
        async for e in turn:
            if isinstance(e, ev.TurnStarted):
                await client.set_model(sid, "sage")
    await client.open_session()
    await client.open_session()
    assert sid not in daemon.session.sessions
    async with client.turn(sid, "second turn") as turn:
        events = [e async for e in turn]
    route = events[0]
    assert route.chosen_model == "demo:sage" and route.chain[route.winner_index].policy == "manual_sticky"


async def test_the_eviction_check_per_open_and_turn_costs_the_same_however_many_sessions_are_cached(
        client, daemon, monkeypatch):
    """Issue 16: keeping idle sessions within their bounds must not walk every cached session on
    each open and each turn end (O(sessions) per turn: a daemon that got slower the longer it ran)."""
    from actors.session.state import SessionState

    calls = 0
    tally = SessionState.history_facts

    def counted(self):
        nonlocal calls
        calls += 1
        return tally(self)

    monkeypatch.setattr(SessionState, "history_facts", counted)

    async def one_turn_on_a_fresh_session() -> int:
        nonlocal calls
        calls = 0
        sid = (await client.open_session()).session_id
        async with client.turn(sid, "hello") as turn:
            async for _ in turn:
                pass
        assert isinstance(turn.terminal, ev.TurnCompleted)
        return calls

    few = await one_turn_on_a_fresh_session()
    for _ in range(40):
        await client.open_session()
    assert len(daemon.session.sessions) > 40
    many = await one_turn_on_a_fresh_session()
    assert many == few <= 3


async def test_the_idle_sessions_running_byte_total_matches_their_histories_after_turns_and_evictions(
        client, daemon):
    """The O(1) eviction keeps a running total of the idle histories' estimated bytes: it must stay
    equal to what a full count gives, and list exactly the sessions that run no turn."""
    actor = daemon.session
    sids = [(await client.open_session()).session_id for _ in range(5)]
    for sid in sids * 2:
        async with client.turn(sid, f"a turn on {sid}") as turn:
            async for _ in turn:
                pass
        assert isinstance(turn.terminal, ev.TurnCompleted)
    one = 4 * actor.sessions[sids[0]].history_facts()[0] + 400 * len(actor.sessions[sids[0]].messages)
    actor.max_idle_history_bytes = 3 * one   # room for about three
    async with client.turn(sids[1], "used last") as turn:
        async for _ in turn:
            pass
    assert sids[1] in actor.sessions                       # a turn that just ended: most recently used
    assert sids[0] not in actor.sessions                   # the coldest went first
    idle = {sid: s for sid, s in actor.sessions.items() if s.turn is None}
    assert set(actor._idle) == set(idle)
    assert actor._idle.bytes == sum(4 * s.history_facts()[0] + 400 * len(s.messages) for s in idle.values())
    assert actor._idle.bytes <= actor.max_idle_history_bytes
