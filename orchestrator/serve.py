"""``orchestrator serve``: the daemon in the foreground."""
from __future__ import annotations

import os
import signal
import sys

import trio

from actors.runtime.supervisor import SupervisorGaveUp

from .client import DaemonUnreachable, open_client
from .daemon import STOP_SIGNALS, Daemon, SignalLatch
from .logs import configure_logging
from .paths import EndpointRefused, check_endpoint, resolve_paths
from .settings import SettingsError, load_settings


def run_serve(args) -> int:
    # From here on a SIGTERM/SIGINT never kills the process mid-way: before the daemon listens it
    # is remembered (and starts the clean shutdown at once), after the daemon stopped it is ignored.
    latch = SignalLatch.install()
    paths = resolve_paths()
    try:
        settings = load_settings(paths.daemon_file)
    except SettingsError as exc:
        print(f"orchestrator: invalid {paths.daemon_file}:\n{exc}", file=sys.stderr)
        return 1
    configure_logging(args.log_level or settings.log_level)
    if not paths.models_file.exists():
        print(f"orchestrator: no model registry at {paths.models_file}; `orchestrator init` writes a starter "
              "home (or run `orchestrator demo` for an offline tour)", file=sys.stderr)
        return 1
    try:
        check_endpoint(paths.endpoint)
    except EndpointRefused as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return 1
    if _already_serving(paths.endpoint):
        print(f"orchestrator: a daemon is already serving {paths.endpoint}; stop it first "
              "(or set ORCHESTRATOR_ENDPOINT for a second one)", file=sys.stderr)
        return 1
    daemon = Daemon(paths, settings, wire_mode=args.wire_mode, signal_latch=latch)
    try:
        trio.run(daemon.run)
    except BaseException as exc:  # noqa: BLE001 — report the cause in one line, exit non-zero
        gave_up = _find(exc, SupervisorGaveUp)
        if gave_up is None:
            raise
        print(f"orchestrator: {gave_up}; exiting so the service manager can restart the daemon", file=sys.stderr)
        return 1
    finally:
        # The daemon has stopped; the interpreter's finalization would put back the default
        # handlers (which kill), but leaves an ignored signal ignored.
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
    return 0


def _already_serving(endpoint: str) -> bool:
    """ZeroMQ would silently take over a live daemon's ipc socket: ask it first."""
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[len("ipc://"):]):
        return False
    return trio.run(_answers, endpoint)


async def _answers(endpoint: str) -> bool:
    try:
        async with open_client(endpoint, timeout=0.5):
            return True
    except (DaemonUnreachable, OSError):
        return False


def _find(exc: BaseException, kind: type) -> BaseException | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None
