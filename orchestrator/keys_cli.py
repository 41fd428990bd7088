"""``orchestrator keys generate [--out FILE] [--force]`` · ``keys show [FILE] [--json]`` (DESIGN §4.11).

Key pairs for the CURVE-authenticated worker transport (docs/remote-workers.md). The default file
is ``<state>/keys/curve.key``: 0600 in a 0700 folder, never overwritten without ``--force``.
``show`` prints the public key only — the text to put in the other side's allow-list.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .exitcodes import EXIT_OK, CliError


def add_subparser(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("keys", help="CURVE key pairs for remote workers")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    g = ksub.add_parser("generate", help="write a new key pair (0600)")
    g.add_argument("--out", metavar="FILE", help="default: <state>/keys/curve.key")
    g.add_argument("--force", action="store_true", help="replace an existing file")
    g.add_argument("--json", action="store_true", help='print {"file", "public_key"}')
    s = ksub.add_parser("show", help="print the public key of a key file")
    s.add_argument("file", nargs="?", metavar="FILE", help="default: <state>/keys/curve.key")
    s.add_argument("--json", action="store_true", help='print {"file", "public_key"}')


def _default_file() -> Path:
    from actors.remote.keys import default_key_file

    from .paths import resolve_paths

    return default_key_file(resolve_paths().state)


def run(args: argparse.Namespace) -> int:
    from actors.remote.keys import KeyFileError, generate_key_pair, read_key_file, write_key_file

    try:
        if args.keys_command == "generate":
            path = Path(args.out).expanduser() if args.out else _default_file()
            pair = generate_key_pair()
            write_key_file(path, pair, force=args.force)
            public = pair.public.decode()
            if args.json:
                print(json.dumps({"file": str(path), "public_key": public}))
            else:
                print(f"wrote {path} (0600)\npublic key: {public}")
            return EXIT_OK
        path = Path(args.file).expanduser() if args.file else _default_file()
        public = read_key_file(path).public.decode()
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
    print(json.dumps({"file": str(path), "public_key": public}) if args.json else public)
    return EXIT_OK
