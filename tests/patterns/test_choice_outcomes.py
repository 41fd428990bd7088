"""/route override and /route ignore are outcome signals (spec §5.6): each becomes a pattern_outcomes
row about the model that ran the turn, and the next similar turn's recommendation moves with it."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_live_router import HAIKU, OPUS, home, rated, start  # noqa: E402

from actors.runtime.store import Store  # noqa: E402
from protocol.messages import DecideRoute, RouteChoice  # noqa: E402

ROUTING = """\
schema_version: 1
global_default: sonnet
pattern: {cost_weight: 0, min_confidence: 0.1, min_sample_size: 5}
pattern_disagreement: {surface: true, min_confidence: 0.1, min_sample_size: 5}
rules:
  - name: "fast for migrations"
    when: {message_contains_any: ["migration"]}
    use: haiku
"""


async def suggestion(system, turn: int):
    """Route one similar turn; the pattern entry (deferred to the rule) as (model, confidence)."""
    text = f"review the database migration script for locking problems, case {100 + turn}"
    route = (await system.request("router", DecideRoute("s1", f"t{turn}", text), timeout=5)).route
    assert route.chosen_model == HAIKU           # the rule always wins (spec §4.1)
    e = next((e for e in route.chain if e.policy.value == "pattern"), None)   # none when the store abstains
    return (e.candidate_model, e.confidence or 0.0) if e else (None, 0.0)


async def test_route_override_scores_the_rule_models_turn_0_and_strengthens_the_suggestion(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 0.9, 0.05)
    rated(store, HAIKU, 0.6, 0.002)
    system = await start(nursery, home(tmp_path, ROUTING), store)
    model, before = await suggestion(system, 0)
    assert model == OPUS

    for turn in range(1, 4):
        assert (await system.request("router", RouteChoice("s1", "override"), timeout=5)).ok
        model, after = await suggestion(system, turn)
        assert model == OPUS and after > before
        before = after
    rows = [o for o in store.outcomes() if o.source == "override"]
    assert [(o.turn_id, o.model, o.score) for o in rows] == [(f"t{i}", HAIKU, 0.0) for i in range(3)]


async def test_route_ignore_scores_the_rule_models_turn_1_until_the_store_stops_disagreeing(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 0.9, 0.05)
    rated(store, HAIKU, 0.6, 0.002)
    system = await start(nursery, home(tmp_path, ROUTING), store)
    model, before = await suggestion(system, 0)
    assert model == OPUS

    turn = 0
    while model == OPUS:
        assert (await system.request("router", RouteChoice("s1", "ignore"), timeout=5)).ok
        turn += 1
        model, after = await suggestion(system, turn)
        if model == OPUS:
            assert after < before
        before = after
        assert turn < 40
    nothing = await system.request("router", RouteChoice("s1", "ignore"), timeout=5)
    assert not nothing.ok                      # the store now agrees with the rule: nothing surfaced
    rows = [o for o in store.outcomes() if o.source == "dismissal"]
    assert len(rows) == turn and {(o.model, o.score) for o in rows} == {(HAIKU, 1.0)}


async def test_choice_outcomes_survive_a_restart(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 0.9, 0.05)
    rated(store, HAIKU, 0.6, 0.002)
    system = await start(nursery, home(tmp_path, ROUTING), store)
    _, before = await suggestion(system, 0)
    assert (await system.request("router", RouteChoice("s1", "override"), timeout=5)).ok
    _, live = await suggestion(system, 1)

    again = await start(nursery, home(tmp_path, ROUTING, "home2"), store)
    _, reloaded = await suggestion(again, 1)
    assert reloaded == live and live > before
