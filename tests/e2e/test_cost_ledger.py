"""Every LLM call the provider answered writes one ledger row — also when it was cancelled or cut.

Issue 12 / DESIGN §4.4–§4.5: a cancelled or failed call used to leave no row, so `cost` read $0 and
the daily limit undercounted. When the provider reported no usage the row is an estimate, marked so.
"""
import json
import sqlite3
from decimal import Decimal

import pytest
import trio

from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.render import render_cost
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from protocol.messages import GetHistory
from tests.fakes import Answer, ToolCall, open_fake_openai

from .conftest import run_turn

MODELS = """
providers:
  local: {{kind: openai_compatible, base_url: "{planner}", api_key_env: null}}
  fastco: {{kind: openai_compatible, base_url: "{worker}", api_key_env: null}}
models:
  "local:slow":
    tier: deep
    can_delegate: true
    aliases: [slow]
    capabilities: {{max_context_tokens: 32000}}
    pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
  "local:unpriced-model":
    aliases: [unpriced]
    capabilities: {{max_context_tokens: 32000}}
  "fastco:mini":
    tier: fast
    aliases: [mini]
    capabilities: {{max_context_tokens: 32000}}
    pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
"""

ROUTING = """
schema_version: 1
global_default: local:slow
tiers: {fast: "fastco:mini", balanced: "local:slow", deep: "local:slow"}
"""

LONG_STORY = tuple(f"word{i} " for i in range(400))


@pytest.fixture
async def stack(nursery, short_tmp, wire_mode):
    async with open_fake_openai(api_key=None) as planner_srv, open_fake_openai(api_key=None) as worker_srv:
        home = short_tmp / "home"
        home.mkdir()
        (home / "models.yaml").write_text(MODELS.format(planner=planner_srv.base_url, worker=worker_srv.base_url))
        (home / "routing.yaml").write_text(ROUTING)
        ws = short_tmp / "ws"
        ws.mkdir()
        paths = Paths(home, short_tmp / "state", f"ipc://{short_tmp}/d.sock")
        daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0, retry_base_delay_s=0.001), wire_mode=wire_mode)
        await nursery.start(daemon.run)
        async with open_client(paths.endpoint) as client:
            info = await client.open_session(workspace=str(ws))
            yield client, daemon, info.session_id, planner_srv, worker_srv
        daemon.request_stop("test over")


def ledger(daemon, session_id):
    db = sqlite3.connect(str(daemon.paths.state / "orchestrator.db"))
    try:
        return db.execute("SELECT role, model, input_tokens, output_tokens, cost_usd, price FROM costs "
                          "WHERE session_id=? OR parent_session_id=?", (session_id, session_id)).fetchall()
    finally:
        db.close()


async def cancel_after_deltas(client, sid, text, n):
    async with client.turn(sid, text) as turn:
        deltas = 0
        async for e in turn:
            if isinstance(e, ev.TextDelta):
                deltas += 1
                if deltas == n:
                    await turn.cancel()
    return turn


def assert_one_estimated_row_matches(rows, usage, role="planner", model="local:slow"):
    assert len(rows) == 1, rows
    row_role, row_model, tin, tout, cost, price = rows[0]
    assert (row_role, row_model) == (role, model)
    assert tin > 0 and tout > 0 and Decimal(cost) > 0
    assert json.loads(price)["estimated"] is True
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (tin, tout, cost)
    # priced at $1 / $2 per Mtok
    assert Decimal(cost) == (Decimal(tin) * 1 + Decimal(tout) * 2) / Decimal(1_000_000)


async def test_a_call_cancelled_mid_stream_writes_an_estimated_priced_ledger_row(stack):
    client, daemon, sid, planner_srv, _ = stack
    planner_srv.script(Answer(text=LONG_STORY, delay=0.02))
    turn = await cancel_after_deltas(client, sid, "@slow long story", 4)
    cancelled = turn.terminal
    assert isinstance(cancelled, ev.TurnCancelled)
    assert_one_estimated_row_matches(ledger(daemon, sid), cancelled.usage)
    report = await client.cost(sid)
    assert report.total_usd == cancelled.usage.cost_usd and Decimal(report.total_usd) > 0
    assert report.unknown_cost_calls == 0
    text = render_cost(report, sid)
    assert f"total ${report.total_usd}" in text and f"planner (local:slow): ${report.total_usd}, 1 turns" in text


async def test_a_cancelled_partial_answer_is_stored_with_the_model_that_produced_it(stack):
    client, _, sid, planner_srv, _ = stack
    planner_srv.script(Answer(text=LONG_STORY, delay=0.02))
    await cancel_after_deltas(client, sid, "@slow long story", 4)
    history = (await client.request("session", GetHistory(sid))).messages
    last = history[-1]
    assert last.role.value == "assistant" and last.text.startswith("word0 word1")
    assert last.model == "local:slow"


async def test_a_stream_cut_mid_answer_writes_an_estimated_ledger_row_and_the_failure_usage_has_it(stack):
    client, daemon, sid, planner_srv, _ = stack
    planner_srv.script(Answer(text=("partial ", "answer ", "never finished"), cut_after=2))
    _, events = await run_turn(client, sid, "go")
    failed = events[-1]
    assert isinstance(failed, ev.TurnFailed) and failed.error == "provider_network"
    assert_one_estimated_row_matches(ledger(daemon, sid), failed.usage)
    history = (await client.request("session", GetHistory(sid))).messages
    assert history[-1].model == "local:slow"   # the kept partial answer names its model too
    report = await client.cost(sid)
    assert report.total_usd == failed.usage.cost_usd


async def test_a_completed_call_still_records_the_providers_own_usage_not_an_estimate(stack):
    client, daemon, sid, planner_srv, _ = stack
    planner_srv.script(Answer(text=("fine",)))
    _, events = await run_turn(client, sid, "hi")
    rows = ledger(daemon, sid)
    assert len(rows) == 1 and (rows[0][2], rows[0][3]) == (10, 5)   # the fake's scripted Tokens()
    assert "estimated" not in json.loads(rows[0][5])
    assert events[-1].usage.cost_usd == rows[0][4]


async def test_a_worker_call_cancelled_with_its_parent_is_in_the_ledger_and_the_parents_usage(stack):
    client, daemon, sid, planner_srv, worker_srv = stack
    planner_srv.script(Answer(text=(), tool_calls=(ToolCall("delegate", {"tier": "fast", "task": "tell a story",
                                                                         "context": {"mode": "minimal"}},
                                                            id="tu_1"),)))
    worker_srv.script(Answer(text=LONG_STORY, delay=0.02))
    worker = daemon.actors["worker"]
    async with client.turn(sid, "delegate a story") as turn:
        async for e in turn:
            if isinstance(e, ev.DelegateStarted):
                with trio.fail_after(10):   # the worker's answer has started to stream
                    while not any(t.state is not None and len(t.state.partial) >= 4 for t in worker.turns.values()):
                        await trio.sleep(0.01)
                await turn.cancel()
    cancelled = turn.terminal
    assert isinstance(cancelled, ev.TurnCancelled)
    rows = ledger(daemon, sid)
    planner_rows = [r for r in rows if r[0] == "planner"]
    worker_rows = [r for r in rows if r[0] == "worker"]
    assert len(planner_rows) == 1 and "estimated" not in json.loads(planner_rows[0][5])
    assert len(worker_rows) == 1
    _, model, tin, tout, cost, price = worker_rows[0]
    assert model == "fastco:mini" and tout > 0 and Decimal(cost) > 0 and json.loads(price)["estimated"] is True
    total = sum(Decimal(r[4]) for r in rows)
    assert Decimal(cancelled.usage.cost_usd) == total
    assert cancelled.usage.output_tokens == sum(r[3] for r in rows)
    report = await client.cost(sid)
    assert Decimal(report.total_usd) == total and Decimal(report.by_role["worker"]) == Decimal(cost)


async def test_an_unpriced_session_reports_null_costs_through_the_daemon_never_zero(stack):
    client, _, sid, planner_srv, _ = stack
    planner_srv.script(Answer(text=("one",)), Answer(text=("two",)))
    for _ in range(2):
        _, events = await run_turn(client, sid, "@unpriced hello")
        assert events[-1].usage.cost_usd is None
    report = await client.cost(sid)
    assert report.by_role["planner"] is None and report.tree["planner"]["cost_usd"] is None
    assert report.total_usd is None and report.unknown_cost_calls == 2
    text = render_cost(report, sid)
    assert "planner (local:unpriced-model): unknown (2 call(s) of unknown cost), 2 turns" in text
    assert "$0," not in text.split("└─ workers")[0]
