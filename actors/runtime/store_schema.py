"""Numbered schema migrations, the same for both backends, recorded in ``schema_version``.

Migration 1 is the baseline: ``store.SCHEMA`` (every ``CREATE … IF NOT EXISTS``), re-applied at
each open so a table appended to it appears in every database, SQLite and PostgreSQL alike (the
DDL is written in SQLite's dialect and translated by ``store_backend.pg_ddl``). A change that is
not additive is a new entry in ``MIGRATIONS``. A database a newer version migrated is refused:
this version would not know what its rows mean.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from .store_backend import Backend, StorageError

# Columns added to pattern_outcomes after it first shipped (a database made before gets them).
_PATTERN_OUTCOME_COLUMNS = {"source": "TEXT NOT NULL DEFAULT 'rating'", "fp_name": "TEXT", "fp": "BLOB"}

# Issue 19: several daemons on one database — who owns a session (or a loop), and what each daemon
# saw of the providers, so the others route around an outage it met.
FLEET_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS leases_by_owner ON leases(owner);
CREATE TABLE IF NOT EXISTS availability_observations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    daemon TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error_class TEXT,
    at REAL NOT NULL
);
"""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer orchestrator."""


@attrs.frozen
class Migration:
    version: int
    name: str
    apply: Callable[[Backend], None]


def _baseline(schema: str) -> Callable[[Backend], None]:
    def apply(db: Backend) -> None:
        db.script(schema)
        have = db.columns("pattern_outcomes")
        for name, decl in _PATTERN_OUTCOME_COLUMNS.items():
            if name not in have:
                db.script(f"ALTER TABLE pattern_outcomes ADD COLUMN {name} {decl}")
    return apply


def migrations(schema: str) -> list[Migration]:
    return [
        Migration(1, "baseline: sessions, messages, turns, events, costs, pattern outcomes", _baseline(schema)),
        Migration(2, "fleet: leases and shared availability observations", lambda db: db.script(FLEET_SCHEMA)),
    ]


def latest(schema: str) -> int:
    return migrations(schema)[-1].version


def current_version(db: Backend) -> int:
    """The database's schema version; 0 for a new database, 1 for one made before versions were kept."""
    if "schema_version" not in db.tables():
        return 1 if "sessions" in db.tables() else 0
    rows = db.query("SELECT MAX(version) FROM schema_version")
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def check_not_newer(db: Backend, schema: str) -> int:
    have, known = current_version(db), latest(schema)
    if have > known:
        raise SchemaTooNew(
            f"the database {db.location} has schema version {have}, newer than this orchestrator knows "
            f"({known}); upgrade orchestrator (or point ORCHESTRATOR_STATE at another database)")
    return have


def migrate(db: Backend, schema: str) -> tuple[int, int]:
    """Apply the pending migrations (and the idempotent baseline); (version before, version after)."""
    with db.migration_lock():   # two daemons starting at once on one server: one migrates
        return _migrate_locked(db, schema)


def _migrate_locked(db: Backend, schema: str) -> tuple[int, int]:
    before = check_not_newer(db, schema)
    db.script("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
              "applied_at REAL NOT NULL)")
    for m in migrations(schema):
        if m.version == 1 or m.version > before:   # the baseline: so tables appended to SCHEMA appear
            with db.transaction():
                m.apply(db)
                if m.version > before:
                    db.run("INSERT INTO schema_version (version, name, applied_at) VALUES (?,?,?)",
                           (m.version, m.name, time.time()))
    return before, latest(schema)
