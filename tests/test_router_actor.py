"""Spec §8 worked examples through the router actor (real mailboxes, stub availability and cost)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "router"))
from routing_helpers import ANTHROPIC_ONLY, BOTH_KEYS, HAIKU, MODELS_YAML, OPUS, SONNET, recommending  # noqa: E402

from actors.runtime.kernel import Actor, ActorSystem  # noqa: E402
from actors.router.loader import PolicyLoader  # noqa: E402
from actors.router.actor import BUDGET_UNCHECKED_BANNER, RouterActor  # noqa: E402
from actors.runtime.store import Store  # noqa: E402
from protocol.messages import (  # noqa: E402
    AvailabilityView, CostAmount, DecideRoute, GetAvailability, GetCostToday, ReloadRules, ShowRules,
)

BASE = "schema_version: 1\nglobal_default: sonnet\n"


class StubAvailability(Actor):
    name = "availability"

    def __init__(self, system, unavailable):
        super().__init__(system)
        self.unavailable = unavailable

    def handlers(self):
        return {GetAvailability: self.on_get}

    async def on_get(self, env):
        return AvailabilityView(self.unavailable)


class StubCost(Actor):
    name = "cost"

    def __init__(self, system, usd):
        super().__init__(system)
        self.usd = usd

    def handlers(self):
        return {GetCostToday: self.on_get}

    async def on_get(self, env):
        return CostAmount(self.usd)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "models.yaml").write_text(MODELS_YAML)

    def write(routing: str):
        (tmp_path / "routing.yaml").write_text(routing)
        return tmp_path

    return write


async def start_router(nursery, home: Path, *, env=BOTH_KEYS, unavailable=None, cost="0", pattern=None):
    system = ActorSystem()
    store = Store(":memory:")
    loader = PolicyLoader(str(home / "models.yaml"), str(home / "routing.yaml"), env=env)
    router = RouterActor(system, loader, store=store, pattern=pattern)
    await nursery.start(StubAvailability(system, unavailable or {}).run)
    await nursery.start(StubCost(system, cost).run)
    await nursery.start(router.run)
    return system, store


def steps(route):
    return [(p.policy.value, p.verdict.value, p.candidate_model) for p in route.chain]


def decide(text, **kw):
    return DecideRoute("s1", "t1", text, **kw)


async def test_8_1_sticky(nursery, files):
    system, _ = await start_router(nursery, files(BASE))
    d = await system.request("router", decide("Refactor this function.", sticky_model=SONNET))
    assert steps(d.route) == [("per_message_override", "not_applicable", None), ("manual_sticky", "chose", SONNET)]


async def test_8_2_rule_and_8_3_override(nursery, files):
    system, _ = await start_router(nursery, files(
        BASE + 'rules:\n  - {name: "fast for commits", when: {message_matches: "^/commit"}, use: haiku}\n'))
    d = await system.request("router", decide("/commit fix the auth bug"))
    assert steps(d.route)[-1] == ("rule", "chose", HAIKU) and d.route.chain[-1].rule_name == "fast for commits"
    d = await system.request("router", decide("@haiku what's a quick name?", sticky_model=SONNET))
    assert steps(d.route) == [("per_message_override", "chose", HAIKU)]
    assert d.text == "what's a quick name?"


async def test_8_5_model_outage_falls_through_with_banner(nursery, files):
    home = files(BASE.replace("sonnet", "haiku")
                 + 'rules:\n  - {name: "deep for architecture", when: {message_matches: "architecture"}, use: opus}\n'
                 "workspaces:\n  /work/proj: {default: sonnet}\n")
    system, _ = await start_router(nursery, home, unavailable={OPUS: {"reason": f"{OPUS} model-specific outage"}})
    d = await system.request("router", decide("Walk me through the architecture of this codebase",
                                              workspace="/work/proj"))
    assert steps(d.route)[2:] == [("rule", "rejected", OPUS), ("pattern", "not_applicable", None),
                                  ("workspace_default", "chose", SONNET)]
    assert d.route.chain[2].validation_failure == "provider_unavailable"
    assert d.banners == (f"{OPUS} currently unavailable. Routing fell through to {SONNET}.",)


async def test_8_6_provider_outage_is_a_hard_failure(nursery, files):
    home = files("schema_version: 1\nglobal_default: haiku\n"
                 "rules:\n  - {name: \"default override\", when: {}, use: opus}\n"
                 "workspaces:\n  /work/proj: {default: sonnet}\n")
    system, _ = await start_router(nursery, home, env=ANTHROPIC_ONLY,
                                   unavailable={"anthropic": {"reason":
                                                              "all anthropic models temporarily unavailable"}})
    d = await system.request("router", decide("anything", workspace="/work/proj"))
    assert d.route.winner_index == -1 and d.route.chosen_model is None and d.error_code == "no_model_available"
    assert d.error.startswith("No model available for this turn.\nanthropic provider currently unavailable.")


async def test_8_7_capability_fallthrough(nursery, files):
    home = files(BASE + 'rules:\n  - {name: "long context", when: {estimated_input_tokens_gt: 80000}, use: haiku}\n'
                 "workspaces:\n  /work/proj: {default: opus}\n")
    system, _ = await start_router(nursery, home)
    d = await system.request("router", decide("look", estimated_input_tokens=90000, has_images=True,
                                              workspace="/work/proj"))
    assert steps(d.route)[2:] == [("rule", "rejected", HAIKU), ("pattern", "not_applicable", None),
                                  ("workspace_default", "chose", OPUS)]
    assert d.route.chain[2].validation_failure == "no_vision_support"


async def test_8_11_worker_routing(nursery, files):
    system, _ = await start_router(nursery, files(BASE + "tiers: {fast: haiku, balanced: sonnet, deep: opus}\n"))
    d = await system.request("router", decide("rename foo", delegate_tier="fast", is_worker=True))
    assert steps(d.route)[-1] == ("delegate_request", "chose", HAIKU)
    assert d.can_delegate is False


async def test_8_12_budget_rule_reads_the_cost_actor_and_shows_the_banner(nursery, files):
    home = files(BASE + 'rules:\n  - {name: "budget cap", when: {cost_today_exceeds_usd: 5.00}, use: haiku}\n'
                 '  - {name: "deep for architecture", when: {message_matches: "architecture"}, use: opus}\n')
    system, _ = await start_router(nursery, home, cost="5.42")
    d = await system.request("router", decide("Walk me through the architecture..."))
    assert d.route.chosen_model == HAIKU
    assert d.banners == ('Daily budget $5.00 exceeded ($5.42 today). Routing per "budget cap" rule.',)


@pytest.mark.parametrize("ledger_says", ["NaN", "not a number"])
async def test_a_budget_rule_the_ledger_cannot_feed_says_so_in_a_banner(nursery, files, ledger_says):
    """Issue 11 M4: a NaN total silently disabled the budget rule for the day."""
    home = files(BASE + 'rules:\n  - {name: "budget cap", when: {cost_today_exceeds_usd: 5.00}, use: haiku}\n')
    system, _ = await start_router(nursery, home, cost=ledger_says)
    d = await system.request("router", decide("hello"))
    assert d.route.chosen_model == SONNET
    assert d.banners == (BUDGET_UNCHECKED_BANNER,)


async def test_no_budget_banner_without_a_budget_rule(nursery, files):
    system, _ = await start_router(nursery, files(BASE), cost="NaN")
    assert (await system.request("router", decide("hello"))).banners == ()


async def test_hot_reload_and_a_broken_edit_keeps_the_last_good_rules(nursery, files):
    """Spec §10.1 test 4, and §5.2: invalid file → last-known-good + routing.policy_invalid."""
    home = files(BASE)
    system, store = await start_router(nursery, home)
    assert (await system.request("router", decide("/commit x"))).route.chosen_model == SONNET
    files(BASE + 'rules:\n  - {name: "fast for commits", when: {message_matches: "^/commit"}, use: haiku}\n')
    assert (await system.request("router", decide("/commit x"))).route.chosen_model == HAIKU
    files(BASE + 'rules:\n  - {name: "fast for commits", when: {message_matches: "^/commit"}, use: nosuch}\n')
    d = await system.request("router", decide("/commit x"))
    assert d.route.chosen_model == HAIKU
    assert d.banners[0].startswith("routing.yaml is invalid; using the last-known-good configuration. "
                                   "First error: routing.yaml:4: rules[0].use")
    assert d.banners[0].endswith("Run `orchestrator check` to see every error.")
    invalid = store.events(type_="routing.policy_invalid")
    assert len(invalid) == 1 and "routing.yaml:4: rules[0].use" in invalid[0]["errors"][0]
    report = await system.request("router", ShowRules())
    assert not report.ok and report.rules[0]["use"] == HAIKU
    files(BASE)
    report = await system.request("router", ReloadRules())
    assert report.ok and report.rules == ()


async def test_8_4_pattern_recommendation_wins_when_no_rule_matches(nursery, files):
    system, _ = await start_router(nursery, files(BASE + "rules: []\n"), pattern=recommending(SONNET, 0.78, 12))
    d = await system.request("router", decide("tidy up this module"))
    assert steps(d.route)[-1] == ("pattern", "chose", SONNET)
    assert d.route.chain[-1].confidence == 0.78 and d.route.chain[-1].sample_size == 12


async def test_8_8_pattern_disagreement_is_deferred_and_surfaced(nursery, files):
    home = files(BASE + 'rules:\n  - {name: "fast for commits", when: {message_matches: "^/commit"}, use: haiku}\n'
                 "pattern_disagreement: {surface: true}\n")
    system, _ = await start_router(nursery, home, pattern=recommending(SONNET, 0.87, 23))
    d = await system.request("router", decide("/commit fix the auth bug"))
    assert steps(d.route)[2:] == [("rule", "chose", HAIKU), ("pattern", "deferred", SONNET)]
    assert d.route.winner_index == 2
    assert d.banners[0].startswith('→ Routing to anthropic:claude-haiku-4-5 per rule "fast for commits"')


async def test_a_time_of_day_rule_reads_the_local_clock(nursery, files):
    from datetime import datetime
    home = files(BASE + "rules:\n"
                 '  - {name: "mornings", when: {time_of_day_between: ["00:00", "12:00"]}, use: opus}\n'
                 '  - {name: "afternoons", when: {time_of_day_between: ["12:00", "00:00"]}, use: haiku}\n')
    system, _ = await start_router(nursery, home)
    before = datetime.now().astimezone().hour < 12
    d = await system.request("router", decide("anything"))
    if before == (datetime.now().astimezone().hour < 12):   # not across noon or midnight meanwhile
        assert d.route.chosen_model == (OPUS if before else HAIKU)
