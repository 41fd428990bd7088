"""``orchestrator demo``: a fully offline tour on a temporary home.

Starts a real daemon (real socket, real actors, real SQLite) with the demo registry, drives it
through the client library like any user would, prints what happened and why, stops it, exits 0.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from collections.abc import Iterator

import trio

from protocol import events as ev
from protocol.codec import event_to_json_obj

from .client import open_client
from .daemon import Daemon
from .logs import configure_logging
from .paths import Paths
from .render import render_cost, render_model_state, render_trace
from .settings import DaemonSettings

# (why, what follows /model in this step or None, the message); "/model -" clears the sticky model.
TOUR: list[tuple[str, str | None, str]] = [
    ("A plain question goes to the global default.", None, "What is a good name for a config loader?"),
    ("A message matching a rule goes where the rule says.", None, "/commit fix the auth token refresh"),
    ("An @alias at the start overrides everything, for this message only.", None,
     "@sage how should I split this service into modules?"),
    ("/model sets a sticky model for the session: rules step aside.", "swift", "Refactor this function for me."),
    ("/model - clears it: routing by rules again.", "-", "Walk me through the architecture of this codebase."),
    ("A planner on a model that can delegate hands a mechanical task to the fast tier.", None,
     "Please delegate: list three edge cases for parsing ISO dates"),
]


class _Out:
    def __init__(self, as_json: bool):
        self.as_json = as_json

    def say(self, text: str = "") -> None:
        if not self.as_json:
            with _quiet_if_output_gone():
                print(text, flush=True)

    def event(self, event) -> None:
        with _quiet_if_output_gone():
            self._event(event)

    def _event(self, event) -> None:
        if self.as_json:
            print(json.dumps(event_to_json_obj(event), default=str), flush=True)
        elif isinstance(event, ev.TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, ev.Banner):
            print(f"\n  » {event.text}", flush=True)
        elif isinstance(event, ev.DelegateStarted):
            print(f"\n  ⇢ delegate(tier={event.tier}) → worker {event.worker_session_id} on {event.model}", flush=True)
        elif isinstance(event, ev.DelegateCompleted):
            print(f"  ⇠ worker done ({event.model}, ${event.usage.cost_usd})", flush=True)
        elif isinstance(event, ev.TurnFailed):
            print(f"\n  ✗ turn failed: {event.message}", flush=True)


@contextlib.contextmanager
def _quiet_if_output_gone() -> Iterator[None]:
    """stdout closed (`| head`) or full: the tour ends, and the daemon stops with the tour's turn
    undelivered — expected, so its log lines about that must not reach the terminal."""
    try:
        yield
    except OSError:
        _LOG_STREAM.muted = True
        raise


class _MutableStderr:
    """The demo daemon's log stream: stderr until muted (the daemon's loggers keep the stream they
    were bound with, so reconfiguring logging would not reach them)."""

    muted = False

    def write(self, text: str) -> int:
        return len(text) if self.muted else sys.stderr.write(text)

    def flush(self) -> None:
        if not self.muted:
            sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_LOG_STREAM = _MutableStderr()


def _write_home(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    for name in ("models.yaml", "routing.yaml"):
        (home / name).write_text(resources.files("orchestrator").joinpath("demo_config", name).read_text())


async def _tour(endpoint: str, out: _Out, workspace: Path) -> None:
    async with open_client(endpoint) as client:
        info = await client.open_session(None, str(workspace))
        sid = info.session_id
        out.say(f"Session {sid} (workspace {workspace})\n")
        for step, (why, model_arg, text) in enumerate(TOUR, 1):
            out.say(f"── {step}. {why}")
            if model_arg is not None:
                state = await (client.clear_model(sid) if model_arg == "-" else client.set_model(sid, model_arg))
                out.say(f"  /model {model_arg} → active model: {state.active_model or '(none)'}")
            out.say(f"  you: {text}")
            out.say("  ")
            route = None
            worker_turns = []
            async with client.turn(sid, text) as turn:
                async for event in turn:
                    out.event(event)
                    if isinstance(event, ev.RouteDecided):
                        route = event
                    if isinstance(event, ev.DelegateStarted) and event.worker_turn_id:
                        worker_turns.append(event.worker_turn_id)
            out.say("")
            if route is not None:
                out.say("  Why this model?")
                out.say("    " + render_trace(route).replace("\n", "\n    "))
            for worker_turn in worker_turns:
                out.say("  Why the worker's model? (the chain runs end to end; delegate_request chooses)")
                out.say("    " + render_trace((await client.trace(worker_turn)).route).replace("\n", "\n    "))
            out.say("")
        out.say("── /model show")
        out.say("  " + render_model_state(await client.show_model(sid)).splitlines()[1])
        out.say("")
        out.say("── /cost")
        out.say(render_cost(await client.cost(sid), sid))


async def _main(as_json: bool, fast: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="orch-demo-"))
    try:
        home, state, workspace = root / "home", root / "state", root / "workspace"
        _write_home(home)
        workspace.mkdir()
        (workspace / "README.md").write_text("# Demo workspace\nA tiny project used by the orchestrator demo.\n")
        paths = Paths(home, state, f"ipc://{root / 'd.sock'}")
        daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=2.0), demo_chunk_delay=0.0 if fast else None)
        out = _Out(as_json)
        out.say("orchestrator demo — offline; every model here is a labelled demo model.\n")
        output_gone: OSError | None = None
        async with trio.open_nursery() as nursery:
            endpoint = await nursery.start(daemon.run)
            try:
                await _tour(endpoint, out, workspace)
            except OSError as exc:  # stdout closed or full (see _quiet_if_output_gone)
                output_gone = exc
            daemon.request_stop("demo finished" if output_gone is None else "demo output closed")
        if output_gone is not None:
            raise output_gone
        out.say("\nDemo finished; the daemon stopped cleanly.")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_demo(*, json_output: bool = False, fast: bool = False) -> int:
    configure_logging("warning", stream=_LOG_STREAM)
    trio.run(_main, json_output, fast)
    return 0
