"""``orchestrator serve``: the daemon in the foreground.

It refuses to start — exit 1, one line (or the ``check`` errors) — on what would make it useless:
an invalid config, a state folder or socket folder it cannot create, an endpoint it cannot bind.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING

from .paths import EndpointRefused, Paths, check_endpoint, prepare_endpoint, resolve_paths
from .signals import STOP_SIGNALS, SignalLatch

if TYPE_CHECKING:
    import argparse

    from .settings import DaemonSettings


def run_serve(args: argparse.Namespace, latch: object | None = None) -> int:
    # From here on a SIGTERM/SIGINT never kills the process mid-way: before the daemon listens it
    # is remembered (and starts the clean shutdown at once), after the daemon stopped it is ignored.
    # ``orchestrator serve`` installs the latch in ``cli.main`` before the heavy imports below.
    signal_latch = latch if isinstance(latch, SignalLatch) else SignalLatch.install()
    try:
        return _serve(args, signal_latch)
    finally:
        # The daemon has stopped (or never started); the interpreter's finalization would put back
        # the default handlers (which kill), but leaves an ignored signal ignored.
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


def _fail(message: str) -> int:
    print(f"orchestrator: {message}", file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace, latch: SignalLatch) -> int:
    from .logs import configure_logging
    from .settings import SettingsError, load_settings

    paths = resolve_paths()
    try:
        settings = load_settings(paths.daemon_file)
    except SettingsError as exc:
        print(f"orchestrator: invalid {paths.daemon_file}:\n{exc}", file=sys.stderr)
        return 1
    configure_logging(args.log_level or settings.log_level)
    if (http_problem := _http_settings(args, settings)) is not None:
        return _fail(http_problem)
    if getattr(args, "http", None):
        settings = _with_http(args, settings)
    if not paths.models_file.exists():
        return _fail(f"no model registry at {paths.models_file}; `orchestrator init` writes a starter "
                     "home (or run `orchestrator demo` for an offline tour)")
    if (refused := _invalid_config(paths)) is not None:
        return refused
    try:
        check_endpoint(paths.endpoint, authenticated=settings.curve is not None)
    except EndpointRefused as exc:
        return _fail(str(exc))
    if (unusable := _unusable_folders(paths)) is not None:
        return _fail(unusable)
    if _already_serving(paths.endpoint):
        return _fail(f"a daemon is already serving {paths.endpoint}; stop it first "
                     "(or set ORCHESTRATOR_ENDPOINT for a second one)")
    return _run_daemon(args, paths, settings, latch)


def _with_http(args: argparse.Namespace, settings: DaemonSettings) -> DaemonSettings:
    """``--http [HOST:]PORT`` overrides daemon.yaml's ``http.listen`` (its api_keys_env still applies)."""
    import attrs

    from .gateway.config import HttpSettings, parse_listen

    host, port = parse_listen(args.http)
    keys = settings.http.api_keys_env if settings.http else ()
    return attrs.evolve(settings, http=HttpSettings(host, port, keys))


def _http_settings(args: argparse.Namespace, settings: DaemonSettings) -> str | None:
    """Why the gateway cannot listen as asked (one line), or None."""
    from .gateway.config import parse_listen, refusal

    if getattr(args, "http", None):
        try:
            parse_listen(args.http)
        except ValueError as exc:
            return f"--http: {exc}"
        settings = _with_http(args, settings)
    return refusal(settings.http) if settings.http is not None else None


def _invalid_config(paths: Paths) -> int | None:
    """Refuse an invalid models.yaml/routing.yaml at start: there is no last-known-good version yet
    to keep using (a broken edit of a *running* daemon keeps its last good one)."""
    from .check import check_home

    report = check_home(paths.home, price_check=False)
    if report.ok:
        return None
    print(f"orchestrator: refusing to start: the config in {paths.home} is invalid "
          "(`orchestrator check` shows the same):", file=sys.stderr)
    for error in report.errors:
        print(error, file=sys.stderr)
    return 1


def _unusable_folders(paths: Paths) -> str | None:
    """The state folder and the socket's folder, created now so a bad path is one clear line."""
    if "://" not in str(paths.state):   # a database URL is not a folder
        if paths.state.exists() and not paths.state.is_dir():
            return f"cannot use the state folder {paths.state} (ORCHESTRATOR_STATE): not a directory"
        try:
            paths.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            return f"cannot use the state folder {paths.state} (ORCHESTRATOR_STATE): {exc.strerror or exc}"
    try:
        prepare_endpoint(paths.endpoint)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else paths.endpoint
        return f"cannot create the socket folder for {paths.endpoint} (ORCHESTRATOR_ENDPOINT): " \
               f"{exc.strerror or exc}: {where}"
    return None


def _run_daemon(args: argparse.Namespace, paths: Paths, settings: object, latch: SignalLatch) -> int:
    import trio

    from actors.remote.hub import WorkersError
    from actors.remote.keys import KeyFileError
    from actors.runtime.supervisor import SupervisorGaveUp
    from protocol.transport import EndpointError

    # The pattern store's small products run faster single-threaded (docs/patterns.md); this
    # must be set before numpy loads, which the import of the daemon below does.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .daemon import Daemon
    from .settings import DaemonSettings
    from .statelock import StateLocked

    assert isinstance(settings, DaemonSettings)
    from actors.runtime.store import StorageError

    try:   # opening the database migrates it, or refuses one a newer version migrated
        daemon = Daemon(paths, settings, wire_mode=args.wire_mode, signal_latch=latch)
    except StorageError as exc:
        return _fail(f"refusing to start: {exc}")
    try:
        trio.run(daemon.run)
    except BaseException as exc:  # noqa: BLE001 — report the cause in one line, exit non-zero
        if (gave_up := _find(exc, SupervisorGaveUp)) is not None:
            return _fail(f"{gave_up}; exiting so the service manager can restart the daemon")
        if (locked := _find(exc, StateLocked)) is not None:
            return _fail(str(locked))
        if (workers := _find(exc, (WorkersError, KeyFileError))) is not None:
            return _fail(str(workers))
        if (bad_endpoint := _find(exc, EndpointError)) is not None:
            return _fail(f"cannot listen on {paths.endpoint} (ORCHESTRATOR_ENDPOINT): {bad_endpoint}")
        if (os_error := _find(exc, OSError)) is not None:
            assert isinstance(os_error, OSError)
            where = f": {os_error.filename}" if os_error.filename is not None else ""
            return _fail(f"the daemon stopped: {os_error.strerror or os_error}{where}")
        raise
    return 0


def _already_serving(endpoint: str) -> bool:
    """ZeroMQ would silently take over a live daemon's ipc socket: ask it first."""
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[len("ipc://"):]):
        return False
    import trio

    return trio.run(_answers, endpoint)


async def _answers(endpoint: str) -> bool:
    from .client import DaemonUnreachable, open_client

    try:
        async with open_client(endpoint, timeout=0.5):
            return True
    except (DaemonUnreachable, OSError):
        return False


def _find(exc: BaseException, kind: type | tuple[type, ...]) -> BaseException | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None
