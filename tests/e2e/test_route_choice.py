"""Spec §10.1 test 10 against the live store: a surfaced disagreement, then /route override|ignore."""
import pytest

from actors.runtime.store import PatternOutcome, Store
from orchestrator.chat import _command
from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.render import render_trace
from orchestrator.settings import DaemonSettings
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


COMMIT_ROUTING = """\
schema_version: 1
global_default: demo:steady
pattern_disagreement: {surface: true, min_confidence: 0.85, min_sample_size: 20}
rules:
  - name: "fast for commits"
    when: {message_matches: "^/commit"}
    use: demo:swift
"""
BUGS = ("auth", "login", "token refresh", "session expiry", "password reset", "oauth callback", "csrf check",
        "cookie scope", "rate limit", "signup form", "email verify", "two factor", "api key", "logout",
        "permission", "role check", "jwt parse", "cors header", "redirect loop", "audit log", "sso", "cache",
        "lockout", "captcha")


@pytest.fixture
def commit_paths(paths):
    """A state database that already holds the store's evidence when the daemon starts: sage
    succeeded on 24 commit turns like this one, swift failed on 24 (loaded at start-up)."""
    (paths.home / "routing.yaml").write_text(COMMIT_ROUTING)
    paths.state.mkdir(parents=True, exist_ok=True)
    store = Store(paths.database)
    for i, bug in enumerate(BUGS):
        for model, score, cost in (("demo:sage", 1.0, 0.02), ("demo:swift", 0.0, 0.001)):
            store.record_outcome(PatternOutcome(f"seed-{model}-{i}", "s0", None, f"/commit fix the {bug} bug",
                                                model, score, cost, 1.0))
    store.close()
    return paths


@pytest.fixture
async def commit_daemon(nursery, commit_paths, wire_mode):
    d = Daemon(commit_paths, DaemonSettings(shutdown_grace_s=1.0), wire_mode=wire_mode, demo_chunk_delay=0.002)
    await nursery.start(d.run)
    await d.router.patterns_loaded.wait()
    yield d
    d.request_stop("test over")


async def test_spec_example_rule_wins_and_a_confident_store_disagreement_is_surfaced(commit_daemon):
    """Spec §8 "pattern disagreement" (issue 14's §8.10; tests/router numbers it 8.8) end to end:
    the rule routes the commit turn, the live store's deferred suggestion shows in the banner and in
    `orchestrator trace`, and /route override re-runs the turn on the suggestion."""
    async with open_client(commit_daemon.paths.endpoint) as client:
        turn, events = await run_turn(client, "s1", "/commit fix the auth bug")
        route = events[0]
        assert route.chosen_model == "demo:swift"
        deferred = [e for e in route.chain if e.policy == "pattern"]
        assert [(e.verdict, e.candidate_model) for e in deferred] == [("deferred", "demo:sage")]
        assert deferred[0].confidence >= 0.85 and deferred[0].sample_size >= 20

        banners = [e.text for e in events if hasattr(e, "text") and "demo:sage" in getattr(e, "text", "")]
        assert banners and "Pattern store suggests: demo:sage" in banners[0] and "/route override" in banners[0]

        shown = render_trace((await client.trace(route.turn_id)).route)      # what `orchestrator trace` prints
        assert 'Chose: demo:swift (rule "fast for commits")' in shown
        pattern_line = next(line for line in shown.splitlines() if "PATTERN_RECOMMENDATION" in line)
        assert pattern_line.split()[1:4] == ["PATTERN_RECOMMENDATION", "deferred", "suggested"]
        assert "demo:sage" in pattern_line and "outranked by rule" in shown

        redo = await _command(client, "s1", "/route override")
        _, events = await run_turn(client, "s1", redo)
        assert events[0].chosen_model == "demo:sage"
