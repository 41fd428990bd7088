"""Durable state in one SQLite database (WAL): sessions, messages, turns, events, cost ledger.

Calls are synchronous and short, so actors call them inline. A write given ``into=`` a ``Batch``
is only gathered; ``await store.commit(batch)`` then runs the batch as ONE transaction (group
commit: a turn phase costs one commit instead of one per row). A small batch commits right on
the event loop: measured here, a three-row WAL transaction costs ≈ 30 µs of CPU while a hop to a
worker thread alone costs ≈ 110 µs; a batch larger than ``THREAD_BATCH_BYTES`` (long tool
output) goes to a worker thread so the loop keeps relaying other sessions' tokens. Every other
write commits at once. After a crash the database holds every committed message, turn and ledger
row; a caller that must not report something before it is durable (a turn's terminal event)
awaits the commit first.
"""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import attrs
import trio

from protocol.canonical import Message
from protocol.codec import converter

# Both backends, the migrations and the error type every caller catches (issue 19).
from .store_backend import Backend, StorageError, open_backend
from .store_schema import check_not_newer, migrate as _migrate

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    workspace TEXT,
    active_model TEXT,
    parent_session_id TEXT,
    parent_tool_use_id TEXT,
    is_worker INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    turn_id TEXT,
    role TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    status TEXT NOT NULL,
    model TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    route TEXT,
    usage TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS turns_by_session ON turns(session_id, started_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT,
    turn_id TEXT,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_turn ON events(turn_id);
CREATE TABLE IF NOT EXISTS costs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    parent_session_id TEXT,
    turn_id TEXT,
    model TEXT NOT NULL,
    role TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd TEXT,
    price TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS costs_by_session ON costs(session_id);
CREATE INDEX IF NOT EXISTS costs_by_parent ON costs(parent_session_id);
CREATE INDEX IF NOT EXISTS costs_by_time ON costs(at);
CREATE TABLE IF NOT EXISTS pattern_outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT,
    session_id TEXT,
    workspace TEXT,
    text TEXT NOT NULL,
    model TEXT NOT NULL,
    score REAL NOT NULL,
    cost_usd REAL NOT NULL,
    at REAL NOT NULL,
    source TEXT NOT NULL DEFAULT 'rating',
    fp_name TEXT,
    fp BLOB
);
-- Loops (DESIGN §4.10, actors/loops/store.py): a loop, its ticks and its strike ledger.
CREATE TABLE IF NOT EXISTS loops (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    stop_reason TEXT,
    strikes TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS loop_ticks (
    loop_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    status TEXT NOT NULL,
    pilot_verdict TEXT,
    land_verdict TEXT,
    cost_usd TEXT,
    turn_ids TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    PRIMARY KEY (loop_id, n)
);
-- delegation to command-line agents (actors/delegate/state.py): consent per workspace, the
-- circuit breaker per session, the escalation ledger per (session, task)
CREATE TABLE IF NOT EXISTS delegate_consents (
    workspace TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    radius TEXT NOT NULL,
    granted_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS delegate_breakers (
    session_id TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    open_reason TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS delegate_tasks (
    session_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    needs_work INTEGER NOT NULL,
    escalated TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (session_id, task_id)
);
"""
__all__ = ["Batch", "CostRow", "PatternOutcome", "SCHEMA", "SessionRow", "StorageError", "Store", "StoredOutcome",
           "TurnFacts"]


# Sessions whose next message number is kept in memory (re-read with one indexed query when absent).
SEQ_CACHE_SIZE = 1024


@attrs.frozen
class SessionRow:
    id: str
    workspace: str | None
    active_model: str | None
    parent_session_id: str | None
    parent_tool_use_id: str | None
    is_worker: bool
    created_at: float


def _session_row(r: tuple[Any, ...]) -> SessionRow:
    """A SessionRow from the columns id, workspace, active_model, parent_session_id,
    parent_tool_use_id, is_worker, created_at (in that order)."""
    return SessionRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6])


@attrs.frozen
class CostRow:
    session_id: str
    parent_session_id: str | None
    turn_id: str | None
    model: str
    role: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    at: float


@attrs.frozen
class PatternOutcome:
    """One outcome (issue 14): the text, so a store of any fingerprint can be rebuilt from these rows;
    ``source`` says where the score came from (``rating``, ``override``, ``dismissal``)."""
    turn_id: str | None
    session_id: str | None
    workspace: str | None
    text: str
    model: str
    score: float
    cost_usd: float
    at: float
    source: str = "rating"


@attrs.frozen
class StoredOutcome:
    """A pattern_outcomes row as the router loads it: the outcome, its row id, and the fingerprint
    cached under ``fp_name`` (None when not computed yet) so start-up need not re-fingerprint."""
    id: int
    outcome: PatternOutcome
    fp_name: str | None
    fp: bytes | None


@attrs.frozen
class TurnFacts:
    """What rating a turn needs: who ran it, on which model, what the user asked, what it cost."""
    turn_id: str
    session_id: str
    workspace: str | None
    model: str | None
    text: str
    cost_usd: float


def _stored_cost(text: str | None) -> Decimal | None:
    """A ledger cost as written; a row an older version let through (not a number, NaN, ∞) counts
    as unknown, so it can never poison a total or a report."""
    if text is None:
        return None
    try:
        value = Decimal(text)
    except (ArithmeticError, ValueError, TypeError):
        return None
    return value if value.is_finite() else None


# ``json.dumps(data, default=str)`` without building an encoder per call.
_event_json = json.JSONEncoder(default=str).encode

# A batch with more text than this commits on a worker thread (see the module docstring).
THREAD_BATCH_BYTES = 256 * 1024


class Batch:
    """Writes gathered for one transaction (a turn phase); run them with ``Store.commit``."""

    __slots__ = ("statements", "sessions", "text_bytes")

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any, bool]] = []   # (sql, parameters, executemany?)
        self.sessions: set[str] = set()                      # whose message numbers it used
        self.text_bytes = 0                                  # roughly what it writes

    def __len__(self) -> int:
        return len(self.statements)


class Store:
    """The store on SQLite (a path, the default) or PostgreSQL (a ``postgresql://`` URL).

    ``migrate=False`` only checks the schema is not newer than this version knows (``orchestrator
    migrate`` then applies what is pending); by default opening migrates, as it always has.
    """

    def __init__(self, location: str | Path, *, migrate: bool = True):
        self.backend: Backend = open_backend(location)
        self.path = self.backend.location          # never a password (store_backend.redact_url)
        self.shared = self.backend.shared          # several daemons may use this database
        self.db = self.backend.db
        try:
            if migrate:
                self.migrated = _migrate(self.backend, SCHEMA)
            else:
                check_not_newer(self.backend, SCHEMA)
        except BaseException:
            self.backend.close()
            raise
        self._next_seq: dict[str, int] = {}
        # The connection is used from the event loop and from the commit thread: one at a time.
        self._lock = threading.Lock()
        self._committer = trio.CapacityLimiter(1)

    def close(self) -> None:
        with self._lock:
            self.backend.close()

    # --- group commit ------------------------------------------------------------------------------

    def batch(self) -> Batch:
        return Batch()

    def _write(self, sql: str, params: Any, into: Batch | None, *, many: bool = False) -> None:
        if into is not None:
            into.statements.append((sql, params, many))
            rows = params if many else (params,)
            into.text_bytes += sum(len(v) for row in rows for v in row if isinstance(v, str))
            return
        with self._lock:
            if many:
                self.backend.run_batch(((sql, params, True),))
            else:
                self.backend.run(sql, params)

    def commit_now(self, batch: Batch) -> None:
        """Run ``batch`` as one transaction, here and now; on failure nothing of it is written."""
        if not batch.statements:
            return
        try:
            with self._lock:
                self.backend.run_batch(batch.statements)
        except StorageError:
            for sid in batch.sessions:  # their numbers were taken but not written: re-read them
                self._next_seq.pop(sid, None)
            raise
        finally:
            batch.statements = []

    async def commit(self, batch: Batch) -> None:
        """``commit_now``: inline for a small batch, on a worker thread for a large one."""
        if batch.text_bytes > THREAD_BATCH_BYTES:
            await trio.to_thread.run_sync(self.commit_now, batch, limiter=self._committer)
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
            self.commit_now(batch)

    def _query(self, sql: str, params: Any = ()) -> list[Any]:
        with self._lock:
            return self.backend.query(sql, params)

    # --- sessions -------------------------------------------------------------------------------

    def create_session(self, session_id: str, workspace: str | None, *, parent_session_id: str | None = None,
                       parent_tool_use_id: str | None = None, is_worker: bool = False) -> SessionRow:
        now = time.time()
        self._write(
            "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?)",
            (session_id, workspace, None, parent_session_id, parent_tool_use_id, int(is_worker), now, now), None,
        )
        if len(self._next_seq) < SEQ_CACHE_SIZE:  # a session just created has no messages: no MAX(seq) query
            self._next_seq[session_id] = 0
        return SessionRow(session_id, workspace, None, parent_session_id, parent_tool_use_id, is_worker, now)

    def get_session(self, session_id: str) -> SessionRow | None:
        rows = self._query(
            "SELECT id, workspace, active_model, parent_session_id, parent_tool_use_id, is_worker, created_at "
            "FROM sessions WHERE id=?", (session_id,))
        return _session_row(rows[0]) if rows else None

    def list_sessions(self, include_workers: bool = False) -> list[SessionRow]:
        q = ("SELECT id, workspace, active_model, parent_session_id, parent_tool_use_id, is_worker, created_at "
             "FROM sessions" + ("" if include_workers else " WHERE is_worker=0") + " ORDER BY created_at")
        return [_session_row(r) for r in self._query(q)]

    def set_active_model(self, session_id: str, model: str | None) -> None:
        self._write("UPDATE sessions SET active_model=?, updated_at=? WHERE id=?", (model, time.time(), session_id),
                    None)

    # --- messages -------------------------------------------------------------------------------

    def append_messages(self, session_id: str, turn_id: str | None, messages: Iterable[Message], *,
                        into: Batch | None = None) -> None:
        seq = self._seq(session_id)
        now = time.time()
        rows = []
        for m in messages:
            rows.append((session_id, seq, turn_id, m.role.value, json.dumps(converter.unstructure(m)), now))
            seq += 1
        if not rows:
            return
        # One transaction (or one batch): a turn's messages land together or not at all.
        self._write("INSERT INTO messages VALUES (?,?,?,?,?,?)", rows, into, many=True)
        if into is not None:
            into.sessions.add(session_id)
        self._next_seq[session_id] = seq

    def _seq(self, session_id: str) -> int:
        if session_id not in self._next_seq:
            if len(self._next_seq) >= SEQ_CACHE_SIZE:  # bounded: a daemon must not grow with its past
                del self._next_seq[next(iter(self._next_seq))]
            rows = self._query("SELECT MAX(seq) FROM messages WHERE session_id=?", (session_id,))
            self._next_seq[session_id] = (rows[0][0] + 1) if rows and rows[0][0] is not None else 0
        return self._next_seq[session_id]

    def load_messages(self, session_id: str) -> list[Message]:
        return [converter.structure(json.loads(d), Message) for (d,) in
                self._query("SELECT data FROM messages WHERE session_id=? ORDER BY seq", (session_id,))]

    # --- turns and events -------------------------------------------------------------------------

    def start_turn(self, turn_id: str, session_id: str, model: str | None, route: dict | None, *,
                   into: Batch | None = None) -> None:
        self._write("INSERT INTO turns (id, session_id, status, model, started_at, route) VALUES (?,?,?,?,?,?)",
                    (turn_id, session_id, "running", model, time.time(), json.dumps(route) if route else None), into)

    def finish_turn(self, turn_id: str, status: str, usage: dict | None = None, error: str | None = None, *,
                    into: Batch | None = None) -> None:
        self._write("UPDATE turns SET status=?, ended_at=?, usage=?, error=? WHERE id=?",
                    (status, time.time(), json.dumps(usage) if usage else None, error, turn_id), into)

    def interrupted_turns(self) -> list[tuple[str, str]]:
        """Turns a crash left 'running': (turn_id, session_id). On a shared database, only those no
        live daemon holds the session lease of (a delegation's turn: its parent's), not a neighbour's."""
        if not self.shared:
            return [tuple(r) for r in self._query("SELECT id, session_id FROM turns WHERE status='running'")]
        return [tuple(r) for r in self._query(
            "SELECT t.id, t.session_id FROM turns t LEFT JOIN sessions s ON s.id=t.session_id "
            "LEFT JOIN leases l ON l.kind='session' AND l.id=COALESCE(s.parent_session_id, t.session_id) "
            "AND l.expires_at>=? WHERE t.status='running' AND l.owner IS NULL", (time.time(),))]

    def running_turns(self, session_id: str) -> list[str]:
        """The session's turns (its delegations' too) still marked running: after a takeover, the
        dead owner's, to be closed."""
        return [r[0] for r in self._query(
            "SELECT t.id FROM turns t LEFT JOIN sessions s ON s.id=t.session_id WHERE t.status='running' "
            "AND (t.session_id=? OR s.parent_session_id=?)", (session_id, session_id))]

    def forget_cached(self, session_id: str) -> None:
        """Another daemon may have written this session: read its message numbers afresh."""
        self._next_seq.pop(session_id, None)

    def set_turn_route(self, turn_id: str, model: str | None, route: dict, *, into: Batch | None = None) -> None:
        """A mid-turn fallback: the turn now runs on ``model``; ``route`` keeps both decisions."""
        self._write("UPDATE turns SET model=?, route=? WHERE id=?", (model, json.dumps(route), turn_id), into)

    def turn_route(self, turn_id: str) -> dict | None:
        rows = self._query("SELECT route FROM turns WHERE id=?", (turn_id,))
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    def turn_count(self, session_id: str) -> int:
        return int(self._query("SELECT COUNT(*) FROM turns WHERE session_id=?", (session_id,))[0][0])

    def last_turn_route(self, session_id: str) -> dict | None:
        rows = self._query("SELECT route FROM turns WHERE session_id=? AND route IS NOT NULL "
                           "ORDER BY started_at DESC LIMIT 1", (session_id,))
        return json.loads(rows[0][0]) if rows else None

    def record_event(self, session_id: str | None, turn_id: str | None, type_: str, data: dict, *,
                     into: Batch | None = None) -> None:
        self._write("INSERT INTO events (session_id, turn_id, type, data, at) VALUES (?,?,?,?,?)",
                    (session_id, turn_id, type_, _event_json(data), time.time()), into)

    def events(self, *, turn_id: str | None = None, type_: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT type, data FROM events WHERE 1=1", []
        if turn_id:
            q += " AND turn_id=?"
            args.append(turn_id)
        if type_:
            q += " AND type=?"
            args.append(type_)
        return [{"type": t, **json.loads(d)} for t, d in self._query(q + " ORDER BY id", args)]

    # --- cost ledger -------------------------------------------------------------------------------

    def record_cost(self, row: CostRow, price: dict | None = None) -> None:
        self._write(
            "INSERT INTO costs (session_id, parent_session_id, turn_id, model, role, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, price, at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row.session_id, row.parent_session_id, row.turn_id, row.model, row.role, row.input_tokens,
             row.output_tokens, row.cache_read_tokens, row.cache_write_tokens, row.reasoning_tokens,
             None if row.cost_usd is None else str(row.cost_usd), json.dumps(price or {}), row.at), None,
        )

    def cost_rows(self, *, session_id: str | None = None, since: float | None = None) -> list[CostRow]:
        q = ("SELECT session_id, parent_session_id, turn_id, model, role, input_tokens, output_tokens, "
             "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, at FROM costs WHERE 1=1")
        args: list[Any] = []
        if session_id is not None:
            q += " AND (session_id=? OR parent_session_id=?)"
            args += [session_id, session_id]
        if since is not None:
            q += " AND at>=?"
            args.append(since)
        return [CostRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], _stored_cost(r[10]), r[11])
                for r in self._query(q + " ORDER BY id", args)]

    def cost_since(self, since: float) -> Decimal:
        costs = (_stored_cost(c) for (c,) in self._query(
            "SELECT cost_usd FROM costs WHERE at>=? AND cost_usd IS NOT NULL", (since,)))
        return sum((c for c in costs if c is not None), Decimal(0))

    # --- pattern outcomes (issue 14) ------------------------------------------------------------

    def record_outcome(self, o: PatternOutcome, fp_name: str | None = None, fp: bytes | None = None) -> int:
        rows = self._query(
            "INSERT INTO pattern_outcomes (turn_id, session_id, workspace, text, model, score, cost_usd, at, "
            "source, fp_name, fp) VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (o.turn_id, o.session_id, o.workspace, o.text, o.model, o.score, o.cost_usd, o.at, o.source,
             fp_name, fp))
        return int(rows[0][0]) if rows else 0

    def record_outcomes(self, rows: Iterable[tuple[PatternOutcome, str | None, bytes | None]]) -> None:
        """Many outcomes in one transaction (imports, benchmarks)."""
        self._write(
            "INSERT INTO pattern_outcomes (turn_id, session_id, workspace, text, model, score, cost_usd, at, "
            "source, fp_name, fp) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(o.turn_id, o.session_id, o.workspace, o.text, o.model, o.score, o.cost_usd, o.at, o.source, n, f)
             for o, n, f in rows], None, many=True)

    def outcomes(self) -> list[PatternOutcome]:
        return [PatternOutcome(*r) for r in self._query(
            "SELECT turn_id, session_id, workspace, text, model, score, cost_usd, at, source FROM pattern_outcomes "
            "ORDER BY id")]

    def last_outcome_id(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM pattern_outcomes")[0][0])

    def stored_outcomes(self, after_id: int, upto_id: int) -> list[StoredOutcome]:
        """The rows with ``after_id < id ≤ upto_id``, with cached fingerprints (the router's start-up load)."""
        return [StoredOutcome(r[0], PatternOutcome(*r[1:10]), r[10], r[11]) for r in self._query(
            "SELECT id, turn_id, session_id, workspace, text, model, score, cost_usd, at, source, fp_name, fp "
            "FROM pattern_outcomes WHERE id>? AND id<=? ORDER BY id", (after_id, upto_id))]

    def cache_fingerprints(self, rows: Iterable[tuple[int, str, bytes]]) -> None:
        """Store computed fingerprints so the next start-up reads them instead of recomputing."""
        self._write("UPDATE pattern_outcomes SET fp_name=?, fp=? WHERE id=?",
                    [(name, fp, i) for i, name, fp in rows], None, many=True)

    def turn_facts(self, turn_id: str) -> TurnFacts | None:
        """The turn's session, model, first user message text and ledger cost; None for an unknown turn."""
        found = self._query("SELECT t.session_id, s.workspace, t.model FROM turns t LEFT JOIN sessions s "
                            "ON s.id = t.session_id WHERE t.id=?", (turn_id,))
        if not found:
            return None
        row = found[0]
        text = ""
        for (d,) in self._query("SELECT data FROM messages WHERE turn_id=? AND role='user' ORDER BY seq",
                                (turn_id,)):
            text = converter.structure(json.loads(d), Message).text
            if text:
                break
        costs = (_stored_cost(c) for (c,) in self._query(
            "SELECT cost_usd FROM costs WHERE turn_id=? AND cost_usd IS NOT NULL", (turn_id,)))
        cost = sum((c for c in costs if c is not None), Decimal(0))
        return TurnFacts(turn_id, row[0], row[1], row[2], text, float(cost))

    def last_turn_id(self, session_id: str) -> str | None:
        rows = self._query("SELECT id FROM turns WHERE session_id=? ORDER BY started_at DESC LIMIT 1", (session_id,))
        return rows[0][0] if rows else None
