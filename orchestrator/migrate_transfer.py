"""``orchestrator export|import``: the whole state as versioned JSON lines, between any two backends.

The file: a header line ``{"format": "orchestrator-export", "version": 1, "schema_version": N, …}``;
per table a line ``{"table": T, "columns": [...]}`` followed by one ``{"row": [...]}`` line per row
(bytes as ``{"$b64": "…"}``); last, ``{"end": true, "counts": {T: rows}}`` — an import checks it, so
a truncated file is refused rather than half-imported. Rows keep their ids, so references
between tables (events → turns, costs → sessions) hold. Leases are not moved: they describe
daemons running on the source, not data.

An import goes into an empty database, in one transaction: a failure leaves it empty.
"""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from actors.runtime.store import SCHEMA, Store
from actors.runtime.store_schema import current_version, latest

FORMAT = "orchestrator-export"
VERSION = 1
# Runtime state, not data: which daemon holds what (a moved database has no live daemons yet).
NOT_EXPORTED = frozenset({"schema_version", "leases", "sqlite_sequence"})
CHUNK = 1000
PROGRESS_EVERY = 50_000

Progress = Callable[[str], None]


class TransferError(Exception):
    """An export or import that cannot be done: one clear line."""


def data_tables(store: Store) -> list[str]:
    return sorted(t for t in store.backend.tables() if t not in NOT_EXPORTED and not t.startswith("sqlite_"))


def _columns(store: Store, table: str) -> list[str]:
    return sorted(store.backend.columns(table))


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "$b64" in value:
        try:
            return base64.b64decode(value["$b64"], validate=True)
        except (TypeError, ValueError):
            raise TransferError("a {\"$b64\": …} value is not base64: the export is damaged") from None
    return value


def export(store: Store, out: IO[str], progress: Progress) -> dict[str, int]:
    """Write every data table of ``store`` to ``out``; the rows per table."""
    counts: dict[str, int] = {}
    header = {"format": FORMAT, "version": VERSION, "schema_version": current_version(store.backend),
              "source": store.backend.kind, "exported_at": time.time()}
    out.write(json.dumps(header) + "\n")
    for table in data_tables(store):
        columns = _columns(store, table)
        out.write(json.dumps({"table": table, "columns": columns}) + "\n")
        n = 0
        for chunk in store.backend.stream(f"SELECT {', '.join(columns)} FROM {table}", CHUNK):
            out.writelines(json.dumps({"row": [_encode(v) for v in row]}) + "\n" for row in chunk)
            n += len(chunk)
            if n % PROGRESS_EVERY < len(chunk):
                progress(f"export: {table}: {n} rows")
        counts[table] = n
        progress(f"export: {table}: {n} rows, done")
    out.write(json.dumps({"end": True, "counts": counts}) + "\n")
    return counts


def _lines(src: IO[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(src, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise TransferError(f"line {number} is not JSON ({exc}): is this an orchestrator export?") from None
        if not isinstance(item, dict):
            raise TransferError(f"line {number} is not an object: is this an orchestrator export?")
        yield item


def import_(store: Store, src: IO[str], progress: Progress) -> dict[str, int]:
    """Load an export into ``store``, which must hold no data; the rows per table."""
    lines = _lines(src)
    header = next(lines, None)
    if header is None or header.get("format") != FORMAT:
        raise TransferError("not an orchestrator export (the first line names no format)")
    if header.get("version") != VERSION:
        raise TransferError(f"export format version {header.get('version')!r}; this orchestrator reads {VERSION}")
    if not isinstance(header.get("schema_version", 0), int):
        raise TransferError(f"the export's schema_version {header.get('schema_version')!r} is not a number: "
                            "the export is damaged")
    if int(header.get("schema_version", 0)) > latest(SCHEMA):
        raise TransferError(f"the export has schema version {header['schema_version']}, newer than this "
                            f"orchestrator knows ({latest(SCHEMA)}); upgrade orchestrator first")
    tables = data_tables(store)
    busy = {t: n for t in tables if (n := int(store.backend.query(f"SELECT COUNT(*) FROM {t}")[0][0]))}
    if busy:
        listed = ", ".join(f"{t} ({n} rows)" for t, n in sorted(busy.items()))
        raise TransferError(f"the target database {store.path} is not empty: {listed}; import into an empty one")
    counts: dict[str, int] = {}
    end: dict[str, Any] | None = None
    with store._lock, store.backend.transaction():
        table, sql, batch = "", "", []
        for item in lines:
            if "row" in item:
                if not table:
                    raise TransferError("a row before any table line: the export is damaged")
                if not isinstance(item["row"], list):
                    raise TransferError(f"a row of table {table} is not a list: the export is damaged")
                batch.append([_decode(v) for v in item["row"]])
                if len(batch) >= CHUNK:
                    _flush(store, sql, batch, table, counts, progress)
            elif "table" in item:
                _flush(store, sql, batch, table, counts, progress, done=True)
                table, sql = _begin_table(store, tables, item)
                counts[table] = 0
            elif item.get("end"):
                _flush(store, sql, batch, table, counts, progress, done=True)
                end = item
                break
        if end is None:
            raise TransferError("the export ends early (no end line): it was cut off; nothing was imported")
        if end.get("counts") != counts:
            raise TransferError(f"the export's rows do not match its own counts ({end.get('counts')} vs {counts}); "
                                "nothing was imported")
        for t in counts:
            if "id" in store.backend.columns(t):
                store.backend.reset_ids(t)
    return counts


def _begin_table(store: Store, tables: list[str], item: dict[str, Any]) -> tuple[str, str]:
    table, columns = item["table"], item.get("columns")
    if table not in tables:
        raise TransferError(f"the export has a table {table!r} this database does not: migrate it, or upgrade")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) \
            or not set(columns) <= store.backend.columns(table):
        raise TransferError(f"table {table}: the export's columns {columns} are not all in this database")
    marks = ",".join("?" * len(columns))
    return table, f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def _flush(store: Store, sql: str, batch: list[list[Any]], table: str, counts: dict[str, int],
           progress: Progress, *, done: bool = False) -> None:
    if batch:
        store.backend.run(sql, batch, True)
        before = counts[table]
        counts[table] += len(batch)
        if counts[table] // PROGRESS_EVERY > before // PROGRESS_EVERY and not done:
            progress(f"import: {table}: {counts[table]} rows")
        batch.clear()
    if done and table:     # the table's last rows are in: say so, whether or not they filled a batch
        progress(f"import: {table}: {counts[table]} rows, done")
