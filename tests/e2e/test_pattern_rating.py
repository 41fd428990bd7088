"""Rating turns teaches the live pattern store (issue 14 phase B): through the daemon, demo provider."""
import json
import subprocess

import pytest

from orchestrator.render import render_trace
from protocol.errors import RemoteError
from protocol.messages import GetPatternStats, RateTurn

from .conftest import run_turn
from .test_cli_process import PY, cli, running_daemon

ROUTING = """\
schema_version: 1
global_default: demo:steady
pattern: {cost_weight: 0, min_confidence: 0.5, min_sample_size: 5}
"""
TEXT = "review the database migration script for locking problems, case {i}"


def pattern_entry(route):
    return next(e for e in route.chain if e.policy == "pattern")


@pytest.fixture
def home(home):
    (home / "routing.yaml").write_text(ROUTING)
    return home


async def test_rated_turns_move_the_next_similar_turns_recommendation(client):
    _, events = await run_turn(client, "s1", TEXT.format(i=99))
    cold = events[0]
    assert cold.chosen_model == "demo:steady"
    assert pattern_entry(cold).verdict == "not_applicable" and "no rated outcomes" in pattern_entry(cold).reason

    for i in range(6):
        for model, score in (("sage", 1.0), ("swift", 0.0)):
            _, events = await run_turn(client, "s1", f"@{model} " + TEXT.format(i=i))
            rated = await client.request("router", RateTurn(events[0].turn_id, score))
            assert rated.model == f"demo:{model}"

    _, events = await run_turn(client, "s2", TEXT.format(i=100))
    warm = events[0]
    assert warm.chosen_model == "demo:sage"
    assert pattern_entry(warm).verdict == "chose"
    shown = render_trace((await client.trace(warm.turn_id)).route)     # what `orchestrator trace` prints
    assert "Chose: demo:sage (pattern recommendation)" in shown
    assert any(line.split()[1:4] == ["PATTERN_RECOMMENDATION", "chose", "demo:sage"] for line in shown.splitlines())

    stats = (await client.request("router", GetPatternStats())).stats
    assert stats["outcomes"] == 12 and set(stats["models"]) == {"demo:sage", "demo:swift"}


async def test_rating_an_unknown_turn_or_a_score_out_of_range_is_refused(client):
    with pytest.raises(RemoteError) as exc:
        await client.request("router", RateTurn("no-such-turn", 1.0))
    assert exc.value.code == "unknown_turn"
    _, events = await run_turn(client, "s1", "hello")
    with pytest.raises(RemoteError) as exc:
        await client.request("router", RateTurn(events[0].turn_id, 1.5))
    assert exc.value.code == "invalid_score"


async def test_rate_with_only_a_session_rates_its_last_turn(client):
    _, events = await run_turn(client, "s1", "hello there")
    rated = await client.request("router", RateTurn("", 0.7, "s1"))
    assert rated.turn_id == events[0].turn_id and rated.score == 0.7


def test_rate_and_patterns_stats_from_the_command_line(env):
    with running_daemon(env):
        out = cli(env, "ask", "--json", "--session", "s1", "@sage " + TEXT.format(i=1))
        turn_id = json.loads(out.stdout.splitlines()[0])["turn_id"]
        rated = cli(env, "rate", turn_id, "good")
        assert rated.returncode == 0 and "demo:sage" in rated.stdout, rated.stderr
        unknown = cli(env, "rate", "no-such-turn", "0.5")
        assert unknown.returncode == 1 and "unknown turn" in unknown.stderr
        bad = cli(env, "rate", turn_id, "1.5")
        assert bad.returncode == 2 and "invalid score" in bad.stderr
        stats = cli(env, "patterns", "stats", "--json")
        assert stats.returncode == 0, stats.stderr
        data = json.loads(stats.stdout)
        assert data["outcomes"] == 1 and data["fingerprint"] == "hashed" and list(data["models"]) == ["demo:sage"]
        assert "outcomes: 1" in cli(env, "patterns", "stats").stdout
        nothing = cli(env, "route", "ignore", "--session", "s1")
        assert nothing.returncode == 1 and "no pattern-store suggestion" in nothing.stdout
        assert cli(env, "route", "override", "--session", "nobody").returncode == 1


def test_chat_rate_rates_the_sessions_last_turn(env):
    with running_daemon(env):
        assert cli(env, "ask", "--session", "s_r", "@swift " + TEXT.format(i=2)).returncode == 0
        out = subprocess.run([PY, "-m", "orchestrator", "chat", "--session", "s_r"], env=env,
                             input="/rate bad\n/rate meh\n", capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "(demo:swift): 0" in out.stdout and "usage: /rate good|bad|0.7" in out.stdout
