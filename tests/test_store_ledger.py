"""The ledger as read back: rows an older version (or a hand edit) left behind never poison totals."""
import time
from decimal import Decimal

from actors.cost.actor import build_report
from actors.runtime.store import CostRow, Store


def test_rows_with_costs_that_are_not_finite_numbers_read_back_as_unknown(store_location):
    store = Store(store_location)
    now = time.time()
    store.record_cost(CostRow("s", None, "t", "m:a", "planner", 1, 1, 0, 0, 0, Decimal("0.5"), now))
    for bad in ("NaN", "abc", "-Infinity"):  # as written before the cost actor cleaned its records
        store.backend.run("INSERT INTO costs (session_id, turn_id, model, role, input_tokens, output_tokens, "
                         "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, price, at) "
                         "VALUES ('s','t','m:a','planner',0,0,0,0,0,?,'{}',?)", (bad, now))
    rows = store.cost_rows(session_id="s")
    assert [r.cost_usd for r in rows] == [Decimal("0.5"), None, None, None]
    report = build_report(rows, "s")
    assert report.total_usd == "0.5" and report.unknown_cost_calls == 3
    assert store.cost_since(now - 1) == Decimal("0.5")
    store.close()
