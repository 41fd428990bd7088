"""``orchestrator export|import`` moves every row between backends: SQLite → PostgreSQL → SQLite."""
import json
import os
import stat
import subprocess
import sys
import time
from decimal import Decimal

from actors.delegate import state as delegate_state
from actors.delegate.breaker import BreakerState, TaskState
from actors.delegate.consent import BlastRadius
from actors.loops.driver import LoopSpec
from actors.loops.runner import LoopState, TickRecord
from actors.loops.store import LoopStore
from actors.runtime import lease
from actors.runtime.store import CostRow, PatternOutcome, Store
from actors.availability.shared import SharedObservations
from orchestrator.migrate_transfer import data_tables
from protocol.canonical import Message, Role, TextBlock


def fill(store: Store) -> None:
    """A row in every table, with the awkward values: bytes, None, unicode, %, large numbers."""
    store.create_session("s1", "/ws/ü", is_worker=False)
    store.create_session("w1", "/ws/ü", parent_session_id="s1", parent_tool_use_id="tu_1", is_worker=True)
    store.start_turn("t1", "s1", "m:a", {"chosen_model": "m:a", "reason": "50% off"})
    store.append_messages("s1", "t1", [Message(Role.USER, (TextBlock("héllo ? %s"),)),
                                       Message(Role.ASSISTANT, (TextBlock("hi"),))])
    store.record_event("s1", "t1", "turn.completed", {"n": 1})
    store.finish_turn("t1", "completed", {"input_tokens": 2**40})
    store.record_cost(CostRow("s1", None, "t1", "m:a", "planner", 1, 2, 3, 4, 5, Decimal("0.000123"), 1.5), {"p": 1})
    store.record_cost(CostRow("w1", "s1", "t1", "m:b", "worker", 0, 0, 0, 0, 0, None, 2.25))
    store.record_outcome(PatternOutcome("t1", "s1", None, "text", "m:a", 0.75, 0.01, 3.0), "hashed", b"\x00\xff")
    store.record_outcome(PatternOutcome(None, None, None, "other", "m:b", 0.0, 0.0, 4.0, "override"))
    SharedObservations(store, "A").record("demo", "demo:swift", False, "network", 5.0)
    lease.acquire(store, "session", "s1", "A", 30.0, time.time())
    loops = LoopStore(store)
    loops.save_loop(LoopState("l_1", LoopSpec("pilot", "go ü", land="land %s", budget_usd="1.5"), "s1",
                              strikes={"item ?": 2}, created_at=7.0))
    loops.save_tick("l_1", TickRecord(1, "completed", "ADVANCED", None, "0.01", ["t1"], 8.0, 9.0))
    radius = BlastRadius("cli:agent", ("agent", "-p", "50%"), "/ws/ü", ("src/**",), "pytest -q")
    delegate_state.grant_consent(store, radius)
    delegate_state.put_breaker(store, "s1", BreakerState(2, None))
    delegate_state.put_task(store, "s1", "task ?", TaskState(1, "its review came back NEEDS_WORK"))


def dump(location: str) -> dict[str, list[tuple]]:
    store = Store(location, migrate=False)
    try:
        out = {}
        for table in data_tables(store):
            columns = sorted(store.backend.columns(table))
            rows = store.backend.query(f"SELECT {', '.join(columns)} FROM {table}")
            out[table] = sorted((tuple(r) for r in rows), key=repr)
        return out
    finally:
        store.close()


def cli(env: dict, state: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env={**env, "ORCHESTRATOR_STATE": state},
                          capture_output=True, text=True, timeout=120)


def test_a_round_trip_sqlite_to_postgresql_to_sqlite_keeps_every_row_of_every_table(env, pg_url, short_tmp):
    first, last = short_tmp / "first", short_tmp / "last"
    source = Store(first / "orchestrator.db")
    fill(source)
    source.close()
    expected = dump(str(first / "orchestrator.db"))
    assert all(expected[t] for t in expected), expected   # every table has rows to lose

    out = cli(env, str(first), "export", str(short_tmp / "a.jsonl"), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["tables"] == {t: len(rows) for t, rows in expected.items()}
    assert stat.S_IMODE(os.stat(short_tmp / "a.jsonl").st_mode) == 0o600
    assert "export: sessions: 2 rows, done" in out.stderr        # progress on stderr

    into_pg = cli(env, pg_url, "import", str(short_tmp / "a.jsonl"), "--json")
    assert into_pg.returncode == 0, into_pg.stderr
    assert json.loads(into_pg.stdout)["rows"] == summary["rows"]
    assert dump(pg_url) == expected

    assert cli(env, pg_url, "export", str(short_tmp / "b.jsonl")).returncode == 0
    back = cli(env, str(last), "import", str(short_tmp / "b.jsonl"))
    assert back.returncode == 0, back.stderr
    assert dump(str(last / "orchestrator.db")) == expected

    moved = Store(pg_url)   # ids carry on after the imported ones
    moved.record_event("s1", "t1", "turn.started", {})
    moved.record_cost(CostRow("s1", None, "t1", "m:a", "planner", 0, 0, 0, 0, 0, None, 9.0))
    assert len(moved.events()) == 2 and moved.last_outcome_id() == 2
    assert lease.holder(moved, "session", "s1", time.time()) is None   # leases describe the source's daemons
    moved.close()


def test_import_refuses_a_database_that_holds_data_and_a_cut_off_export(env, short_tmp, pg_url):
    state = short_tmp / "s"
    store = Store(state / "orchestrator.db")
    fill(store)
    store.close()
    assert cli(env, str(state), "export", str(short_tmp / "x.jsonl")).returncode == 0
    busy = cli(env, str(state), "import", str(short_tmp / "x.jsonl"))
    assert busy.returncode == 1
    assert busy.stderr.strip().startswith("orchestrator: the target database") and "is not empty" in busy.stderr
    lines = (short_tmp / "x.jsonl").read_text().splitlines()
    (short_tmp / "cut.jsonl").write_text("\n".join(lines[:-3]) + "\n")
    cut = cli(env, pg_url, "import", str(short_tmp / "cut.jsonl"))
    assert cut.returncode == 1 and "cut off; nothing was imported" in cut.stderr
    assert all(not rows for rows in dump(pg_url).values())   # one transaction: nothing half-imported


def test_import_reports_every_table_it_loaded_on_stderr(env, short_tmp):
    source, target = short_tmp / "src", short_tmp / "dst"
    store = Store(source / "orchestrator.db")
    fill(store)
    store.close()
    assert cli(env, str(source), "export", str(short_tmp / "x.jsonl")).returncode == 0
    loaded = cli(env, str(target), "import", str(short_tmp / "x.jsonl"))
    assert loaded.returncode == 0, loaded.stderr
    assert "import: sessions: 2 rows, done" in loaded.stderr and "import: turns: 1 rows, done" in loaded.stderr
    assert "import: availability_observations: 1 rows, done" in loaded.stderr   # the first table, too


HEADER = '{"format": "orchestrator-export", "version": 1, "schema_version": 2}'


def test_a_damaged_export_is_refused_in_one_line_and_imports_nothing(env, short_tmp):

    damaged = {
        "schema_version": '{"format": "orchestrator-export", "version": 1, "schema_version": "x"}\n',
        "row": HEADER + '\n{"table": "sessions", "columns": ["id"]}\n{"row": 5}\n',
        "base64": HEADER + '\n{"table": "pattern_outcomes", "columns": ["fp"]}\n{"row": [{"$b64": "!!"}]}\n',
        "columns": HEADER + '\n{"table": "sessions", "columns": [["id"]]}\n',
    }
    for name, text in damaged.items():
        (short_tmp / f"{name}.jsonl").write_text(text)
        out = cli(env, str(short_tmp / name), "import", str(short_tmp / f"{name}.jsonl"))
        assert out.returncode == 1, (name, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "a bug" not in lines[0], (name, out.stderr)
        assert "damaged" in lines[0] or "are not all in this database" in lines[0], (name, out.stderr)
        if (short_tmp / name / "orchestrator.db").exists():
            assert all(not rows for rows in dump(str(short_tmp / name / "orchestrator.db")).values())
