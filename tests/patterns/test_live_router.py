"""Slot 4 is live (issue 14 phase B): the router actor loads rated outcomes from the state database.

Spec §10.1 tests 9, 11 and 25 against the live store through the router actor.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "router"))
sys.path.insert(0, str(Path(__file__).parents[1]))
from routing_helpers import HAIKU, MODELS_YAML, OPUS, SONNET  # noqa: E402
from test_router_actor import BASE, StubAvailability, StubCost  # noqa: E402

from actors.runtime.kernel import ActorSystem  # noqa: E402
from actors.router.actor import RouterActor  # noqa: E402
from actors.router.loader import PolicyLoader  # noqa: E402
from actors.runtime.store import PatternOutcome, Store  # noqa: E402
from protocol.messages import DecideRoute  # noqa: E402

from routing_helpers import BOTH_KEYS  # noqa: E402

TEXT = "review the database migration script for locking problems, case {i}"


def rated(store: Store, model: str, score: float, cost: float, n: int = 12, text: str = TEXT) -> None:
    for i in range(n):
        store.record_outcome(PatternOutcome(f"t-{model}-{i}", "s0", None, text.format(i=i), model, score, cost, 1.0))


async def start(nursery, home: Path, store: Store):
    system = ActorSystem()
    loader = PolicyLoader(str(home / "models.yaml"), str(home / "routing.yaml"), env=BOTH_KEYS)
    await nursery.start(StubAvailability(system, {}).run)
    await nursery.start(StubCost(system, "0").run)
    router = RouterActor(system, loader, store=store)
    await nursery.start(router.run)
    await router.patterns_loaded.wait()
    return system


def pattern_entry(route):
    return next(e for e in route.chain if e.policy.value == "pattern")


def home(tmp_path: Path, routing: str, name: str = "home") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "models.yaml").write_text(MODELS_YAML)
    (d / "routing.yaml").write_text(routing)
    return d


async def ask(system, text: str = "review the database migration script for locking problems, case 99"):
    return (await system.request("router", DecideRoute("s1", "t1", text), timeout=5)).route


async def test_outcomes_in_the_state_database_make_slot_4_choose(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 1.0, 0.05)
    rated(store, HAIKU, 0.0, 0.002)
    system = await start(nursery, home(tmp_path, BASE + "pattern: {min_confidence: 0.5}\n"), store)
    route = await ask(system)
    assert route.chosen_model == OPUS
    entry = pattern_entry(route)
    assert entry.verdict.value == "chose" and entry.sample_size >= 5


async def test_an_empty_store_is_not_applicable_with_its_reason(nursery, tmp_path):
    system = await start(nursery, home(tmp_path, BASE), Store(tmp_path / "state.db"))
    route = await ask(system)
    entry = pattern_entry(route)
    assert entry.verdict.value == "not_applicable" and "no rated outcomes" in entry.reason
    assert route.chosen_model == SONNET


async def test_9_low_confidence_from_the_live_store_is_not_applicable(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 1.0, 0.05, n=3)       # too thin to pass min_sample_size 5
    rated(store, HAIKU, 0.0, 0.002, n=3)
    system = await start(nursery, home(tmp_path, BASE), store)
    route = await ask(system)
    entry = pattern_entry(route)
    assert entry.verdict.value == "not_applicable" and entry.reason
    assert route.chosen_model == SONNET


async def test_11_cost_weight_0_and_1_recommend_different_models(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 0.9, 0.05)
    rated(store, HAIKU, 0.7, 0.001)
    chosen = {}
    for w in (0, 1):
        system = await start(nursery, home(tmp_path, BASE + f"pattern: {{cost_weight: {w}}}\n", f"w{w}"), store)
        chosen[w] = (await ask(system)).chosen_model
    assert chosen == {0: OPUS, 1: HAIKU}


async def test_25_identical_costs_reduce_to_quality_without_raising(nursery, tmp_path):
    store = Store(tmp_path / "state.db")
    rated(store, OPUS, 0.9, 0.01)
    rated(store, HAIKU, 0.2, 0.01)
    system = await start(nursery, home(tmp_path, BASE + "pattern: {cost_weight: 0.5}\n"), store)
    route = await ask(system)
    assert route.chosen_model == OPUS and pattern_entry(route).verdict.value == "chose"
