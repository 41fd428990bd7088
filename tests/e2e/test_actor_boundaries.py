"""Actor boundaries are messages (issue 10 item 6): availability tells the router, the session asks
the router to resolve /model names, and status asks every actor — in-process and over the wire."""
import time

import pytest
import trio

from protocol import events as ev
from protocol.errors import RemoteError
from protocol.messages import CallOutcome

from .conftest import run_turn


async def _recorded(daemon, type_):
    with trio.fail_after(10):
        while not (found := daemon.store.events(type_=type_)):
            await trio.sleep(0.01)
    return found


async def test_availability_changes_reach_the_router_as_messages_and_show_in_status(daemon, client):
    for _ in range(5):
        await daemon.system.tell("availability", CallOutcome("demo", "demo:sage", False, "server_error", time.time()))
    unavailable = await _recorded(daemon, ev.ProviderUnavailable.TYPE)
    assert unavailable[0]["scope"] == "demo:sage" and unavailable[0]["reason"] == "demo:sage model-specific outage"
    status = await client.status()
    assert [(s["scope"], s["kind"]) for s in status.availability] == [("demo:sage", "model")]
    assert status.availability[0]["since"].endswith("Z")
    await client.reset_availability("demo:sage")
    recovered = await _recorded(daemon, ev.ProviderRecovered.TYPE)
    assert recovered[0]["scope"] == "demo:sage"
    assert (await client.status()).availability == ()


async def test_model_names_are_resolved_by_the_router_and_unknown_ones_refused(client):
    sid = (await client.open_session()).session_id
    state = await client.set_model(sid, "swift")
    assert state.active_model == "demo:swift"
    with pytest.raises(RemoteError) as refused:
        await client.set_model(sid, "no-such-model")
    assert refused.value.code == "unknown_model"
    _, events = await run_turn(client, sid, "which model?")
    assert events[0].chosen_model == "demo:swift"


async def test_status_aggregates_what_each_actor_reports_about_itself(daemon, client):
    status = await client.status()
    assert set(status.actors) == set(daemon.actors)
    for entry in status.actors.values():
        assert entry["faults"] == 0 and entry["dropped"] == 0 and "unresponsive" not in entry
    assert status.accepting_turns and status.turns_running == 0


async def test_status_still_answers_when_an_actor_does_not(daemon, client):
    from protocol.messages import GetActorStatus

    async def wedged(env):
        await trio.sleep_forever()

    daemon.actors["availability"].table[GetActorStatus] = wedged
    status = await client.status()
    assert "unresponsive" in status.actors["availability"]
    assert "unresponsive" not in status.actors["session"] and status.accepting_turns
    await client.ping()  # control kept answering while it waited
