"""End to end through the real socket: turns, the turn lock, cancellation, /model queueing."""
import pytest
import trio

from protocol import events as ev
from protocol.errors import RemoteError

from .conftest import run_turn


async def test_a_turn_streams_route_decided_started_deltas_and_completed_with_usage(client):
    info = await client.open_session()
    turn, events = await run_turn(client, info.session_id, "hello")
    types = [type(e) for e in events]
    assert types[0] is ev.RouteDecided and types[1] is ev.TurnStarted
    assert ev.TextDelta in types and types[-1] is ev.TurnCompleted
    assert sum(t is ev.RouteDecided for t in types) == 1
    done = events[-1]
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    assert float(done.usage.cost_usd) > 0
    assert "".join(e.text for e in events if isinstance(e, ev.TextDelta)).startswith("[demo model demo:steady]")


async def test_second_turn_on_a_busy_session_is_refused_with_turn_in_progress(client):
    info = await client.open_session()
    async with client.turn(info.session_id, "a long answer please") as turn:
        with pytest.raises(RemoteError) as refused:
            await client.request("session", __import__("protocol.messages", fromlist=["StartTurn"]).StartTurn(
                info.session_id, "second"))
        assert refused.value.code == "turn_in_progress"
        async for _ in turn:
            pass
    assert isinstance(turn.terminal, ev.TurnCompleted)


@pytest.mark.chunk_delay(0.1)
async def test_cancel_ends_a_streaming_turn_quickly_and_the_session_takes_the_next_turn(client):
    info = await client.open_session()
    async with client.turn(info.session_id, "stream something") as turn:
        async for e in turn:
            if isinstance(e, ev.TextDelta):
                started = trio.current_time()
                await turn.cancel()
    assert isinstance(turn.terminal, ev.TurnCancelled)
    assert trio.current_time() - started < 1.0
    _, events = await run_turn(client, info.session_id, "next")
    assert isinstance(events[-1], ev.TurnCompleted)
    get_history = __import__("protocol.messages", fromlist=["GetHistory"]).GetHistory
    history = await client.request("session", get_history(info.session_id))
    roles = [m.role.value for m in history.messages]
    assert roles[0] == "user" and roles[-1] == "assistant"


async def test_model_swaps_during_a_turn_are_queued_and_the_last_one_wins(client):
    """Spec §10.1 tests 3 and 27: the lock holds; /model A then /model B → only B applies next turn."""
    info = await client.open_session()
    sid = info.session_id
    banners = []
    async with client.turn(sid, "first turn") as turn:
        async for e in turn:
            if isinstance(e, ev.TurnStarted):
                first_model = e.model
                state_a = await client.set_model(sid, "sage")
                state_b = await client.set_model(sid, "swift")
            if isinstance(e, ev.Banner):
                banners.append(e.text)
    assert isinstance(turn.terminal, ev.TurnCompleted) and turn.terminal.model == first_model == "demo:steady"
    assert state_a.banner == "Model swap pending: demo:sage. Applies to next turn."
    assert state_b.banner == "Model swap pending: demo:swift. Applies to next turn."
    assert banners[-1] == "Model swap pending: demo:swift. Applies to next turn."
    _, events = await run_turn(client, sid, "second turn")
    route = events[0]
    assert route.chosen_model == "demo:swift" and route.chain[route.winner_index].policy == "manual_sticky"


async def test_override_and_sticky_and_rule_each_show_in_the_trace(client):
    info = await client.open_session()
    sid = info.session_id
    _, events = await run_turn(client, sid, "@sage quick question")
    assert events[0].chain[-1].policy == "per_message_override"
    _, events = await run_turn(client, sid, "/commit tidy up")
    assert events[0].chosen_model == "demo:swift" and events[0].chain[-1].rule_name == "fast for commits"
    trace = await client.trace(events[0].turn_id)
    assert trace.route == events[0]


async def test_unknown_alias_fails_the_turn_before_it_starts(client):
    info = await client.open_session()
    _, events = await run_turn(client, info.session_id, "@nosuch hello")
    assert [type(e) for e in events] == [ev.RouteDecided, ev.TurnFailed]
    assert events[0].winner_index == -1 and events[0].chosen_model is None
    assert events[1].error == "invalid_override"


async def test_status_lists_the_actors_and_health(client):
    status = await client.status()
    assert status.accepting_turns
    assert {"session", "router", "planner", "worker", "cost", "availability", "control"} <= set(status.actors)
    assert all(a["status"] == "running" for a in status.actors.values())
