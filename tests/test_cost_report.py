"""The cost report never shows an unknown cost as 0 (DESIGN §4.5): null in JSON, unknown in text."""
from decimal import Decimal

from actors.cost.actor import build_report
from actors.runtime.store import CostRow
from orchestrator.render import render_cost


def row(cost: str | None, *, role: str = "planner", model: str = "local:llama", session: str = "s_1",
        turn: str = "t_1", parent: str | None = None) -> CostRow:
    return CostRow(session, parent, turn, model, role, 100, 20, 0, 0, 0,
                   None if cost is None else Decimal(cost), 1.0)


def test_a_role_whose_calls_are_all_unpriced_has_null_cost_not_zero():
    report = build_report([row(None, turn="t_1"), row(None, turn="t_2")], "s_1")
    assert report.by_role["planner"] is None
    assert report.tree["planner"]["cost_usd"] is None
    assert report.tree["planner"]["unknown_cost_calls"] == 2
    # No call has a price: there is no total to state (null), never "0" (DESIGN §4.5).
    assert report.total_usd is None and report.tree["total_usd"] is None and report.unknown_cost_calls == 2
    assert report.tree["unknown_cost_calls"] == 2
    assert report.by_role["worker"] == "0"   # no worker calls at all: that really is 0


def test_an_all_unpriced_report_renders_unknown_and_never_a_bare_zero():
    text = render_cost(build_report([row(None, turn="t_1"), row(None, turn="t_2")], "s_1"), "s_1")
    assert "├─ planner (local:llama): unknown (2 call(s) of unknown cost), 2 turns" in text
    assert "total unknown (2 call(s) of unknown cost)" in text
    assert "total $0" not in text and "planner (local:llama): $0" not in text


def test_a_mixed_role_shows_the_known_sum_and_the_unknown_count_beside_it():
    rows = [row("0.0123", model="a:priced", turn="t_1"), row(None, model="b:free?", turn="t_2"),
            row(None, model="b:free?", turn="t_3"), row(None, model="b:free?", turn="t_4"),
            row(None, role="worker", model="w:unpriced", session="w_1", parent="s_1", turn="wt_1")]
    report = build_report(rows, "s_1")
    assert report.by_role == {"planner": "0.0123", "worker": None}
    assert report.tree["planner"] == {"models": ["a:priced", "b:free?"], "cost_usd": "0.0123",
                                      "unknown_cost_calls": 3, "turns": 4}
    assert report.tree["workers"]["cost_usd"] is None and report.tree["workers"]["unknown_cost_calls"] == 1
    assert report.total_usd == "0.0123" and report.unknown_cost_calls == 4
    text = render_cost(report, "s_1")
    assert "total $0.0123 + 4 call(s) of unknown cost" in text
    assert "├─ planner (a:priced, b:free?): $0.0123 + 3 call(s) of unknown cost, 4 turns" in text
    assert "└─ workers: unknown (1 call(s) of unknown cost), 1 delegations" in text
    assert "w_1 → w:unpriced: unknown (1 call(s) of unknown cost)" in text


def test_fully_priced_reports_are_unchanged():
    report = build_report([row("0.5"), row("0.25", role="worker", session="w_1", parent="s_1", turn="wt")], "s_1")
    assert report.by_role == {"planner": "0.5", "worker": "0.25"} and report.total_usd == "0.75"
    text = render_cost(report, "s_1")
    assert "total $0.75\n" in text and "planner (local:llama): $0.5, 1 turns" in text
    assert "workers: $0.25, 1 delegations" in text and "unknown" not in text
