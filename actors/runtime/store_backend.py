"""The two places ``Store`` keeps its rows: an embedded SQLite file (the default) or a shared
PostgreSQL server (``ORCHESTRATOR_STATE=postgresql://…``, docs/postgresql.md).

The store writes one dialect — SQLite's, with ``?`` placeholders — and the PostgreSQL backend
translates each statement once (a dict lookup afterwards) and the schema's DDL once per open.
Every driver error becomes a ``StorageError`` here, with any password in it blanked out.
"""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class StorageError(Exception):
    """The database failed (disk full, I/O error, locked for too long): one clear line for the user."""

    failure_code = "storage_error"   # what an actor answers when a handler meets this error


def is_database_url(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """The URL as it may appear in a message or a log: never its password."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:      # malformed (a bad port, an unclosed "["): nothing after the scheme is safe to show
        return url.split("://", 1)[0] + "://***"
    if password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- SQLite ----------------------------------------------------------------------------------------


class _GuardedConnection(sqlite3.Connection):
    """Turns every sqlite3 error into a ``StorageError`` for statements run on the connection
    itself (migrations, tests, tools), so the actors catch one exception type and a full disk fails
    a turn instead of crashing an actor. The store's own statements (``SqliteBackend.query``,
    ``run``, ``run_batch``) skip this Python layer: one ``try`` around the whole call converts the
    same errors without a context manager per statement."""

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        with _as_storage_error():
            return super().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        with _as_storage_error():
            return super().executemany(*args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        with _as_storage_error():
            return super().executescript(*args, **kwargs)

    def __exit__(self, *exc_info: Any) -> Any:
        with _as_storage_error():
            return super().__exit__(*exc_info)


@contextlib.contextmanager
def _as_storage_error() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise _storage_error(exc) from exc


def _storage_error(exc: sqlite3.Error) -> StorageError:
    return StorageError(f"the database failed: {exc}")


# The C methods themselves, not _GuardedConnection's wrappers (see its docstring).
_execute = sqlite3.Connection.execute
_executemany = sqlite3.Connection.executemany
_commit = sqlite3.Connection.commit
_rollback = sqlite3.Connection.rollback


def _make_private(db: Path) -> None:
    """All conversation history lives here: the folder 0700, the database 0600 before SQLite opens
    it (SQLite gives the -wal and -shm files the database's mode), older files tightened too."""
    db.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(db.parent, 0o700)
    os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)


class SqliteBackend:
    kind = "sqlite"
    shared = False   # one daemon per file (orchestrator/statelock.py)

    def __init__(self, path: str | Path):
        self.location = str(path)
        if self.location != ":memory:":
            _make_private(Path(self.location))
        self.db = sqlite3.connect(self.location, isolation_level=None, check_same_thread=False,
                                  factory=_GuardedConnection)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return _execute(self.db, sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc

    def run(self, sql: str, params: Any, many: bool = False) -> None:
        try:
            (_executemany if many else _execute)(self.db, sql, params)
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc

    def run_batch(self, statements: Sequence[tuple[str, Any, bool]]) -> None:
        """``statements`` (sql, parameters, executemany?) as ONE transaction: all or nothing."""
        db = self.db
        try:
            _execute(db, "BEGIN")
            for sql, params, many in statements:
                (_executemany if many else _execute)(db, sql, params)
            _commit(db)
        except BaseException as exc:
            if db.in_transaction:
                try:
                    _rollback(db)
                except sqlite3.Error:
                    pass   # the first error is the one to report; SQLite rolls back on its own then
            if isinstance(exc, sqlite3.Error):
                raise _storage_error(exc) from exc
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db:
            self.db.execute("BEGIN")
            yield

    def script(self, ddl: str) -> None:
        # Statement by statement: ``executescript`` would commit the migration's transaction.
        for statement in _statements(ddl):
            self.db.execute(statement)

    @contextlib.contextmanager
    def migration_lock(self) -> Iterator[None]:
        yield   # one daemon per file: the state folder's flock

    def describe(self) -> str:
        return f"SQLite {self.location}"

    def columns(self, table: str) -> set[str]:
        return {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}

    def tables(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def reset_ids(self, table: str) -> None:
        """AUTOINCREMENT follows explicitly inserted ids by itself."""

    def stream(self, sql: str, size: int = 1000) -> Iterator[list[Any]]:
        """A large result in chunks (an export), not all in memory."""
        cur = self.db.execute(sql)
        while rows := cur.fetchmany(size):
            yield rows

    def close(self) -> None:
        self.db.close()


# --- PostgreSQL ------------------------------------------------------------------------------------

# SQLite column types as PostgreSQL spells them (DDL is written once, in SQLite's dialect).
_PG_TYPES = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
]


def pg_ddl(ddl: str) -> str:
    for pattern, replacement in _PG_TYPES:
        ddl = pattern.sub(replacement, ddl)
    return ddl


# The advisory lock key migrations hold (any fixed 64-bit number; "orch" in ASCII).
_MIGRATION_LOCK = 0x6F726368


def _statements(ddl: str) -> list[str]:
    """DDL split at ``;`` (the schema has no ``;`` inside a statement)."""
    return [s.strip() for s in ddl.split(";") if s.strip()]


def pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgBackend:
    kind = "postgresql"
    shared = True    # several daemons on one database: leases (actors/runtime/lease.py)

    def __init__(self, url: str, *, connect_timeout: float = 10.0):
        import psycopg   # only a PostgreSQL user needs the driver loaded

        self._psycopg = psycopg
        self.url = url
        self.location = redact_url(url)
        try:
            parts = urlsplit(url)
            self._password = parts.password
            parts.port        # noqa: B018 — parsing it is the check ("Port out of range …")
        except ValueError:      # not the parser's words: they may quote a password that has a "/" in it
            raise StorageError(f"{self.location} is not a valid database URL: check its host and port, and "
                               "percent-encode special characters (/ @ : [ ]) in the user and password") from None
        self._translated: dict[str, str] = {}
        self._connect_timeout = connect_timeout
        self.db = self._connect()

    def _connect(self) -> Any:
        with self._errors():
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=int(self._connect_timeout))

    def _live(self) -> Any:
        """The connection, opened again after the server dropped it (a restart, a failover)."""
        if self.db.closed or self.db.broken:
            self.db = self._connect()
        return self.db

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._psycopg.Error as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            if self._password:
                text = text.replace(self._password, "***")
            raise StorageError(f"the database failed: {text}") from None

    def _sql(self, sql: str) -> str:
        out = self._translated.get(sql)
        if out is None:
            out = self._translated[sql] = pg_sql(sql)
        return out

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._errors():
            cur = self._live().execute(self._sql(sql), params)
            return cur.fetchall() if cur.description is not None else []

    def run(self, sql: str, params: Any, many: bool = False) -> None:
        with self._errors():
            db = self._live()
            if many:
                with db.cursor() as cur:
                    cur.executemany(self._sql(sql), params)
            else:
                db.execute(self._sql(sql), params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._errors(), self._live().transaction():
            yield

    def run_batch(self, statements: Sequence[tuple[str, Any, bool]]) -> None:
        """``statements`` (sql, parameters, executemany?) as ONE transaction: all or nothing."""
        with self.transaction():
            for sql, params, many in statements:
                self.run(sql, params, many)

    def script(self, ddl: str) -> None:
        with self._errors():
            db = self._live()
            for statement in _statements(pg_ddl(ddl)):
                db.execute(statement)

    @contextlib.contextmanager
    def migration_lock(self) -> Iterator[None]:
        self.query("SELECT pg_advisory_lock(?)", (_MIGRATION_LOCK,))
        try:
            yield
        finally:
            with contextlib.suppress(StorageError):
                self.query("SELECT pg_advisory_unlock(?)", (_MIGRATION_LOCK,))

    def describe(self) -> str:
        return f"PostgreSQL {self.location}"

    def columns(self, table: str) -> set[str]:
        return {r[0] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema=current_schema() "
            "AND table_name=?", (table,))}

    def tables(self) -> set[str]:
        return {r[0] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema=current_schema()")}

    def stream(self, sql: str, size: int = 1000) -> Iterator[list[Any]]:
        """A large result in chunks (an export) through a server-side cursor."""
        with self._errors(), self._live().transaction(), self.db.cursor(name="orchestrator_stream") as cur:
            cur.execute(sql)
            while rows := cur.fetchmany(size):
                yield rows

    def reset_ids(self, table: str) -> None:
        """After rows came in with their ids (an import), the next generated id follows them."""
        if not self.query("SELECT pg_get_serial_sequence(?, 'id')", (table,))[0][0]:
            return
        self.query(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                   f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1), "
                   f"(SELECT COUNT(*) > 0 FROM {table}))")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()


Backend = SqliteBackend | PgBackend


def open_backend(location: str | Path) -> Backend:
    if is_database_url(location):
        return PgBackend(str(location))
    return SqliteBackend(location)
