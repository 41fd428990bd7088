"""Spec §10.1 test 10 against the live store: a surfaced disagreement, then /route override|ignore."""
import pytest

from orchestrator.chat import _command
from orchestrator.rating import override_message
from protocol.messages import RateTurn, RouteChoice

from .conftest import run_turn

ROUTING = """\
schema_version: 1
global_default: demo:steady
pattern: {cost_weight: 0, min_confidence: 0.5, min_sample_size: 5}
pattern_disagreement: {surface: true, min_confidence: 0.5, min_sample_size: 5}
rules:
  - name: "fast for migrations"
    when: {message_contains_any: ["migration"]}
    use: demo:swift
"""
TEXT = "review the database migration script for locking problems, case {i}"


@pytest.fixture
def home(home):
    (home / "routing.yaml").write_text(ROUTING)
    return home


async def teach(client):
    for i in range(6):
        for model, score in (("sage", 1.0), ("swift", 0.0)):
            _, events = await run_turn(client, "s0", f"@{model} " + TEXT.format(i=i))
            await client.request("router", RateTurn(events[0].turn_id, score))


async def test_10_route_override_reruns_on_the_suggestion_and_ignore_dismisses_it(client, daemon):
    nothing = await client.request("router", RouteChoice("s1", "override"))
    assert not nothing.ok and "no pattern-store suggestion" in nothing.detail
    await teach(client)

    turn, events = await run_turn(client, "s1", TEXT.format(i=50))
    route = events[0]
    assert route.chosen_model == "demo:swift"
    assert [(e.policy, e.verdict, e.candidate_model) for e in route.chain if e.policy == "pattern"] == [
        ("pattern", "deferred", "demo:sage")]
    assert any("Pattern store suggests: demo:sage" in getattr(e, "text", "") for e in events)

    redo = await _command(client, "s1", "/route override")       # the chat's path
    assert redo == override_message("demo:sage", TEXT.format(i=50))
    _, events = await run_turn(client, "s1", redo)
    assert events[0].chosen_model == "demo:sage"
    overridden = daemon.store.events(turn_id=route.turn_id, type_="route.overridden")
    assert overridden and overridden[0]["from_model"] == "demo:swift" and overridden[0]["to_model"] == "demo:sage"
    taught = [o for o in daemon.store.outcomes() if o.turn_id == route.turn_id]
    assert [(o.model, o.score, o.source) for o in taught] == [("demo:swift", 0.0, "override")]
    again = await client.request("router", RouteChoice("s1", "override"))
    assert not again.ok        # acted on once; the re-run turn (an @override) surfaces nothing new

    _, events = await run_turn(client, "s1", TEXT.format(i=51))
    dismissed = await client.request("router", RouteChoice("s1", "ignore"))
    assert dismissed.ok and dismissed.model is None
    assert daemon.store.events(turn_id=events[0].turn_id, type_="pattern.override_dismissed")
    taught = [o for o in daemon.store.outcomes() if o.turn_id == events[0].turn_id]
    assert [(o.model, o.score, o.source) for o in taught] == [("demo:swift", 1.0, "dismissal")]
