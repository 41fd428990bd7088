"""Numbered migrations, the same on both backends; a newer schema is refused in one line."""
import json
import sqlite3
import subprocess
import sys

import pytest

from actors.runtime.store import SCHEMA, Store
from actors.runtime.store_backend import open_backend
from actors.runtime.store_schema import SchemaTooNew, current_version, latest, migrate


def test_a_new_database_gets_every_migration_on_either_backend(store_location):
    store = Store(store_location)
    assert store.migrated == (0, latest(SCHEMA))
    assert current_version(store.backend) == latest(SCHEMA)
    assert {"sessions", "messages", "turns", "events", "costs", "pattern_outcomes", "leases",
            "availability_observations", "schema_version"} <= store.backend.tables()
    store.close()
    again = Store(store_location)   # opening again applies nothing more
    assert again.migrated == (latest(SCHEMA), latest(SCHEMA))
    again.close()


def test_a_database_made_before_schema_versions_migrates_from_version_1(tmp_path):
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)   # as the first release wrote it: no versions, outcomes without fingerprints
    old.executescript("CREATE TABLE sessions (id TEXT PRIMARY KEY, workspace TEXT, active_model TEXT, "
                      "parent_session_id TEXT, parent_tool_use_id TEXT, is_worker INTEGER NOT NULL DEFAULT 0, "
                      "created_at REAL NOT NULL, updated_at REAL NOT NULL);"
                      "CREATE TABLE pattern_outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, turn_id TEXT, "
                      "session_id TEXT, workspace TEXT, text TEXT NOT NULL, model TEXT NOT NULL, score REAL NOT NULL,"
                      " cost_usd REAL NOT NULL, at REAL NOT NULL);"
                      "INSERT INTO sessions VALUES ('s_old', NULL, NULL, NULL, NULL, 0, 1.0, 1.0);")
    old.close()
    store = Store(db)
    assert store.migrated == (1, latest(SCHEMA))
    assert [s.id for s in store.list_sessions()] == ["s_old"]
    assert {"source", "fp_name", "fp"} <= store.backend.columns("pattern_outcomes")
    store.close()


def test_a_schema_newer_than_this_version_is_refused(store_location):
    Store(store_location).close()
    backend = open_backend(store_location)
    backend.run("INSERT INTO schema_version (version, name, applied_at) VALUES (?,?,?)", (99, "from the future", 0.0))
    with pytest.raises(SchemaTooNew, match="schema version 99, newer than this orchestrator knows"):
        migrate(backend, SCHEMA)
    backend.close()
    with pytest.raises(SchemaTooNew):
        Store(store_location)


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_migrate_prints_from_and_to_and_the_daemon_refuses_a_newer_schema(env, pg_url):
    env = {**env, "ORCHESTRATOR_STATE": pg_url}
    done = _cli(env, "migrate", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"backend": "postgresql", "database": pg_url.replace(
        pg_url.split(":")[2].split("@")[0], "***"), "from": 0, "to": latest(SCHEMA)}
    again = _cli(env, "migrate")
    assert again.stdout.startswith(f"schema version {latest(SCHEMA)}: up to date (PostgreSQL ")
    backend = open_backend(pg_url)
    backend.run("INSERT INTO schema_version (version, name, applied_at) VALUES (?,?,?)", (99, "future", 0.0))
    backend.close()
    refused = _cli(env, "serve")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "schema version 99, newer than this orchestrator knows" in lines[0], refused.stderr
    assert pg_url.split(":")[2].split("@")[0] not in refused.stderr   # never the password


@pytest.mark.parametrize("url", ["postgresql://u:s3cret@[db/x", "postgresql://u:s3cret@db:5x/x",
                                 "postgresql://u:s3cret@db:99999/x", "postgresql://u:s3/cret@db/x"])
def test_a_malformed_database_url_is_one_line_without_the_password(env, url):
    for args in (("migrate",), ("export", "-"), ("serve",)):
        out = _cli({**env, "ORCHESTRATOR_STATE": url}, *args)
        assert out.returncode == 1, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "is not a valid database URL" in lines[0], out.stderr
        assert "s3cret" not in out.stderr and "cret" not in out.stderr and "a bug" not in out.stderr


def test_export_never_replaces_an_earlier_export_without_force_and_writes_it_private(env, tmp_path):
    state = tmp_path / "state"
    Store(state / "orchestrator.db").close()
    target = tmp_path / "earlier.jsonl"
    target.write_text("an earlier export\n")
    target.chmod(0o644)
    env = {**env, "ORCHESTRATOR_STATE": str(state)}

    refused = _cli(env, "export", str(target))
    assert refused.returncode == 1 and "exists; pass --force" in refused.stderr, refused.stderr
    assert target.read_text() == "an earlier export\n"

    replaced = _cli(env, "export", str(target), "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert target.read_text().startswith("{") and (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []
