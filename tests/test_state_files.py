"""The database holds every conversation: 0600 files in a 0700 folder, older files tightened."""
import os
import stat

from actors.cost.actor import build_report
from actors.runtime.store import CostRow, Store


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_database_and_its_wal_are_private_in_a_private_folder(tmp_path):
    state = tmp_path / "state"
    store = Store(state / "orchestrator.db")
    store.create_session("s1", None)
    assert mode(state) == 0o700
    for name in ("orchestrator.db", "orchestrator.db-wal", "orchestrator.db-shm"):
        assert mode(state / name) == 0o600, name
    store.close()


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    db = state / "orchestrator.db"
    Store(db).close()
    os.chmod(db, 0o644)
    os.chmod(state, 0o755)
    Store(db).close()
    assert mode(db) == 0o600 and mode(state) == 0o700


def test_a_worker_call_of_unknown_price_is_unknown_not_zero():
    row = CostRow("w1", "s1", "t1", "local:llama", "worker", 10, 5, 0, 0, 0, None, 0.0)
    report = build_report([row], "s1")
    item = report.tree["workers"]["items"][0]
    assert item["cost_usd"] is None and item["unknown_cost_calls"] == 1
    assert report.by_model[0]["cost_usd"] is None and report.unknown_cost_calls == 1
