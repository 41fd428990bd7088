"""``orchestrator migrate`` and ``orchestrator export|import`` (DESIGN §4.11, docs/postgresql.md).

They work on the database ``ORCHESTRATOR_STATE`` names (a SQLite state folder or a
``postgresql://`` URL) without a daemon.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .exitcodes import EXIT_FAIL, CliError


def add_subparsers(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("migrate", help="apply pending schema migrations to the state database")
    m.add_argument("--json", action="store_true", help='one object {"backend", "database", "from", "to"}')
    e = sub.add_parser("export", help="write the whole state database to FILE (JSON lines)")
    e.add_argument("file", help="where to write the export (created 0600; '-' for stdout)")
    e.add_argument("--json", action="store_true", help='one object {"file", "tables": {table: rows}, "rows"}')
    e.add_argument("--force", action="store_true", help="replace FILE if it exists")
    i = sub.add_parser("import", help="load an export FILE into an empty state database")
    i.add_argument("file", help="an export written by `orchestrator export` ('-' for stdin)")
    i.add_argument("--json", action="store_true", help='one object {"file", "tables": {table: rows}, "rows"}')


if TYPE_CHECKING:
    from actors.runtime.store import Store


def _progress(line: str) -> None:
    print(f"orchestrator: {line}", file=sys.stderr, flush=True)


def _export_to_file(store: Store, path: Path, *, force: bool) -> dict[str, int]:
    """Never clobbers an earlier export by accident, and never leaves half a file under FILE's name:
    the dump goes to a private temporary file beside it (conversations are in it: 0600 from the
    first byte, like the database) and replaces FILE only once complete."""
    if path.exists() and not force:
        raise CliError(f"{path} exists; pass --force to replace it", EXIT_FAIL)
    if path.is_dir():
        raise CliError(f"{path} is a folder", EXIT_FAIL)
    from .migrate_transfer import export

    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            counts = export(store, out, _progress)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return counts


def run(args: argparse.Namespace) -> int:
    from actors.runtime.store import SCHEMA, StorageError, Store
    from actors.runtime.store_backend import open_backend
    from actors.runtime.store_schema import migrate

    from .migrate_transfer import TransferError, export, import_
    from .paths import resolve_paths

    location = resolve_paths().database
    try:
        if args.command == "migrate":
            backend = open_backend(location)
            try:
                before, after = migrate(backend, SCHEMA)
            finally:
                backend.close()
            report = {"backend": backend.kind, "database": backend.location, "from": before, "to": after}
            if args.json:
                print(json.dumps(report))
            elif before == after:
                print(f"schema version {after}: up to date ({backend.describe()})")
            else:
                print(f"schema version {before} → {after} ({backend.describe()})")
            return 0
        if args.command == "export":
            if isinstance(location, Path) and not location.exists():
                raise CliError(f"no database to export at {location} (ORCHESTRATOR_STATE)", EXIT_FAIL)
            store = Store(location, migrate=False)
            try:
                if args.file == "-":
                    counts = export(store, sys.stdout, _progress)
                else:
                    counts = _export_to_file(store, Path(args.file), force=args.force)
            finally:
                store.close()
        else:
            store = Store(location)
            try:
                if args.file == "-":
                    counts = import_(store, sys.stdin, _progress)
                else:
                    with open(args.file, encoding="utf-8") as src:
                        counts = import_(store, src, _progress)
            finally:
                store.close()
    except (StorageError, TransferError) as exc:
        raise CliError(str(exc), EXIT_FAIL) from None
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror or exc}", EXIT_FAIL) from None
    summary = {"file": args.file, "database": store.path, "tables": counts, "rows": sum(counts.values())}
    if args.json:
        print(json.dumps(summary))
    elif args.file != "-" or args.command == "import":
        verb = "exported" if args.command == "export" else "imported"
        print(f"{verb} {summary['rows']} rows in {len(counts)} tables ({store.backend.describe()})")
    return 0
