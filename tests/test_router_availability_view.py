"""The router routes from availability's published view when it is current, and asks otherwise
(real availability and router actors, a stepped availability clock)."""
import sys
from pathlib import Path

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).parent / "router"))
from routing_helpers import BOTH_KEYS, MODELS_YAML, OPUS, SONNET  # noqa: E402

from actors.availability.actor import AvailabilityActor  # noqa: E402
from actors.availability.state import AUTO_CLEAR_S, MODEL_FAILURE_THRESHOLD  # noqa: E402
from actors.router.actor import RouterActor  # noqa: E402
from actors.router.loader import PolicyLoader  # noqa: E402
from actors.runtime.kernel import ActorSystem  # noqa: E402
from actors.runtime.store import Store  # noqa: E402
from protocol.messages import CallOutcome, DecideRoute  # noqa: E402

ROUTING = ("schema_version: 1\nglobal_default: sonnet\n"
           'rules:\n  - {name: "deep for architecture", when: {message_matches: "architecture"}, use: opus}\n')


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def start(nursery, tmp_path: Path, clock: SteppedClock) -> tuple[ActorSystem, AvailabilityActor]:
    (tmp_path / "models.yaml").write_text(MODELS_YAML)
    (tmp_path / "routing.yaml").write_text(ROUTING)
    system = ActorSystem()
    loader = PolicyLoader(str(tmp_path / "models.yaml"), str(tmp_path / "routing.yaml"), env=BOTH_KEYS)
    availability = AvailabilityActor(system, clock=clock)
    await nursery.start(availability.run)
    await nursery.start(RouterActor(system, loader, store=Store(":memory:")).run)
    return system, availability


async def decide(system: ActorSystem, n: int = 1):
    return await system.request("router", DecideRoute("s1", f"t{n}", "explain the architecture"))


async def test_a_turn_is_routed_from_the_published_view_without_asking_availability(nursery, tmp_path):
    system, availability = await start(nursery, tmp_path, SteppedClock())
    for n in range(3):
        d = await decide(system, n)
        assert d.route.chosen_model == OPUS and d.banners == ()
    assert availability.handled == 0   # no GetAvailability round trip per decision


async def test_an_outage_reported_behind_a_backlog_is_seen_by_the_next_decision(nursery, tmp_path):
    """The planner tells its outcomes and goes on; the next decision must include them even while
    availability has not got to them yet (the round trip used to queue behind them)."""
    system, availability = await start(nursery, tmp_path, SteppedClock())
    await trio.testing.wait_all_tasks_blocked()
    for _ in range(100):   # more than availability takes per task switch
        await system.tell("availability", CallOutcome("anthropic", SONNET, True), hand_over=False)
    for _ in range(MODEL_FAILURE_THRESHOLD):
        await system.tell("availability", CallOutcome("anthropic", OPUS, False, "server"), hand_over=False)
    d = await decide(system)
    assert d.route.chosen_model == SONNET
    assert d.banners == (f"{OPUS} currently unavailable. Routing fell through to {SONNET}.",)


async def test_a_scope_cleared_by_the_clock_is_routed_to_again_and_the_view_goes_back_to_inline(nursery, tmp_path):
    clock = SteppedClock()
    system, availability = await start(nursery, tmp_path, clock)
    for _ in range(MODEL_FAILURE_THRESHOLD):
        await system.tell("availability", CallOutcome("anthropic", OPUS, False, "server"))
    assert (await decide(system, 1)).route.chosen_model == SONNET
    clock.now += AUTO_CLEAR_S   # no attempts for 5 minutes: clears without a transition
    asked = availability.handled
    assert (await decide(system, 2)).route.chosen_model == OPUS
    assert availability.handled == asked + 1   # the copy still named opus: the router asked
    assert (await decide(system, 3)).route.chosen_model == OPUS
    assert availability.handled == asked + 1   # ... and that answer was published: inline again
