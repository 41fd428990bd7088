"""``orchestrator worker --connect tcp://HOST:PORT [--key FILE] [--server-key KEY] [--pool NAME]``.

Runs tool calls for a daemon on this host (docs/remote-workers.md) until SIGTERM/SIGINT (exit 0).
The transport is always CURVE: ``--key`` is this worker's key pair (default
``<state>/keys/curve.key``), ``--server-key`` the daemon's public key (Z85 text or a key file;
default ``$ORCHESTRATOR_SERVER_KEY``). Prints one line once the daemon has welcomed it.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from .exitcodes import EXIT_OK, EXIT_USAGE, CliError
from .argtypes import positive_seconds

SERVER_KEY_VAR = "ORCHESTRATOR_SERVER_KEY"
_CONNECT = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")


def add_subparser(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="run tool calls for a daemon on this host (remote worker)")
    w.add_argument("--connect", required=True, metavar="tcp://HOST:PORT", help="the daemon's workers.listen")
    w.add_argument("--key", metavar="FILE", help="this worker's key pair (default: <state>/keys/curve.key)")
    w.add_argument("--server-key", metavar="KEY",
                   help=f"the daemon's public key or key file (default: ${SERVER_KEY_VAR}); write "
                        "--server-key=KEY, as a key may start with '-'")
    w.add_argument("--pool", default="default", help="the worker pool to join (default: default)")
    w.add_argument("--hello-timeout", type=positive_seconds, default=10.0, metavar="S",
                   help="give up if the daemon has not welcomed this worker within S seconds (default 10)")


def run(args: argparse.Namespace) -> int:
    import trio

    from actors.remote.config import is_pool_name
    from actors.remote.keys import KeyFileError, default_key_file, public_key, read_key_file
    from actors.remote.worker import RemoteWorker, WorkerRefused

    from .paths import resolve_paths

    if not _CONNECT.fullmatch(args.connect):
        raise CliError(f"--connect {args.connect!r}: expected tcp://HOST:PORT", EXIT_USAGE)
    if not is_pool_name(args.pool):
        raise CliError(f"--pool {args.pool!r}: letters, digits, _ . - (at most 64)", EXIT_USAGE)
    server_entry = args.server_key or os.environ.get(SERVER_KEY_VAR)
    if not server_entry:
        raise CliError(f"--server-key is needed: the daemon's public key (`orchestrator keys show` on the daemon "
                       f"host), or set {SERVER_KEY_VAR}", EXIT_USAGE)
    key_file = Path(args.key).expanduser() if args.key else default_key_file(resolve_paths().state)
    try:
        key = read_key_file(key_file, need_secret=True)
        server = public_key(server_entry)
    except KeyFileError as exc:
        hint = "" if key_file.exists() else " (create one: orchestrator keys generate)"
        raise CliError(f"{exc}{hint}") from None
    def rejoined(worker_id: str) -> None:     # the terminal said "lost the daemon": say it is over
        print(f"worker {worker_id} reconnected to {args.connect} (pool {args.pool})", flush=True)

    worker = RemoteWorker(args.connect, key, server, args.pool, hello_timeout_s=args.hello_timeout,
                          on_rejoin=rejoined)
    from .logs import configure_logging

    configure_logging("info")   # log lines to stderr, like the daemon's; stdout carries the "connected" line

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                worker_id = await nursery.start(worker.run)
                print(f"worker {worker_id} connected to {args.connect} (pool {args.pool}, pid {os.getpid()})",
                      flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    except WorkerRefused as exc:
        raise CliError(str(exc)) from None
    except BaseExceptionGroup as group:
        refused, _ = group.split(WorkerRefused)
        if refused is not None:
            leaf: BaseException = refused
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise CliError(str(leaf)) from None
        raise
    print(f"worker stopped (ran {worker.calls_run} tool calls)", file=sys.stderr)
    return EXIT_OK


# The first characters of a Z85 public key: enough to tell workers.allow entries apart at a glance.
KEY_PREFIX = 10


def render_status_workers(workers: list[dict] | tuple[dict, ...]) -> str:
    """``orchestrator status``: one line per connected remote worker (StatusReport.workers)."""
    lines = ["remote workers:"]
    for w in workers:
        key = w["public_key"][:KEY_PREFIX] + "…" if w["public_key"] else "?"
        calls = "1 call" if w["running"] == 1 else f"{w['running']} calls"
        lines.append(f"  {w['id']:<4} pool {w['pool']:<10} {w['host']} pid {w['pid']} · key {key} · "
                     f"heartbeat {w['heartbeat_age_s']:g}s ago · running {calls}")
    return "\n".join(lines)
