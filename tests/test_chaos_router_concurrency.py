"""Found by chaos/soak.py (1,000 concurrent sessions): the router decided one turn at a time, and
each decision waits on a round trip to the availability actor, so under load every session's turn
queued behind the others' round trips until the session actor's 30 s routing timeout failed turns
with ``routing_error``. A decision waiting on another actor must not hold up the ones behind it."""
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).parent / "router"))
from routing_helpers import BOTH_KEYS, MODELS_YAML  # noqa: E402

from actors.router.actor import RouterActor  # noqa: E402
from actors.router.loader import PolicyLoader  # noqa: E402
from actors.runtime.kernel import Actor, ActorSystem  # noqa: E402
from actors.runtime.store import Store  # noqa: E402
from protocol.messages import AvailabilityView, DecideRoute, GetAvailability  # noqa: E402


class GatedAvailability(Actor):
    """Answers the first availability question only when ``gate`` opens; every later one at once."""

    name = "availability"

    def __init__(self, system):
        super().__init__(system)
        self.gate = trio.Event()
        self.first_asked = trio.Event()

    def handlers(self):
        return {GetAvailability: self.on_get}

    async def on_get(self, env):
        if self.first_asked.is_set():
            return AvailabilityView({})
        self.first_asked.set()
        self.spawn(self._answer_later, env)
        return None

    async def _answer_later(self, env):
        await self.gate.wait()
        await self._reply(env, AvailabilityView({}))


async def test_a_decision_waiting_on_the_availability_actor_does_not_hold_up_the_next_sessions_decision(
        nursery, tmp_path, autojump_clock):
    (tmp_path / "models.yaml").write_text(MODELS_YAML)
    (tmp_path / "routing.yaml").write_text("schema_version: 1\nglobal_default: sonnet\n")
    system = ActorSystem()
    availability = GatedAvailability(system)
    router = RouterActor(system, PolicyLoader(str(tmp_path / "models.yaml"), str(tmp_path / "routing.yaml"),
                                              env=BOTH_KEYS), store=Store(":memory:"))
    await nursery.start(availability.run)
    await nursery.start(router.run)
    answered: list[str] = []
    all_answered = trio.Event()

    async def decide(session_id: str) -> None:
        decision = await system.request("router", DecideRoute(session_id, f"t_{session_id}", "hello"))
        assert decision.route.chosen_model is not None
        answered.append(session_id)
        if len(answered) == 2:
            all_answered.set()

    nursery.start_soon(decide, "s_first")
    await availability.first_asked.wait()
    await decide("s_second")            # decided while the first decision still waits
    availability.gate.set()
    await all_answered.wait()
    assert answered == ["s_second", "s_first"]
