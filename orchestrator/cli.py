"""The ``orchestrator`` command line (DESIGN §4.1).

Exit codes: 0 success; 1 a failure the user can act on; 2 usage error; 3 daemon not reachable.
Errors go to stderr as one clear line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import trio

from protocol import events as ev
from protocol.codec import converter, event_to_json_obj
from protocol.errors import RemoteError

from . import __version__
from .client import DaemonUnreachable, _leaves, open_client
from .paths import EndpointRefused, resolve_paths
from .render import render_cost, render_model_state, render_rules, render_status, render_trace

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAIL):
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orchestrator", description="Route every agent turn to the right model, explainably.")
    p.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the daemon in the foreground")
    s.add_argument("--wire-mode", action="store_true", help=argparse.SUPPRESS)
    s.add_argument("--log-level", default=None)

    d = sub.add_parser("demo", help="offline guided tour on a temporary home")
    d.add_argument("--json", action="store_true", help="print the tour's events as JSON lines")
    d.add_argument("--fast", action="store_true", help="no streaming delays")

    a = sub.add_parser("ask", help="run one user turn and stream the answer")
    a.add_argument("--session")
    a.add_argument("--workspace")
    a.add_argument("--json", action="store_true", help="one JSON object per event")
    a.add_argument("text", nargs="+")

    c = sub.add_parser("chat", help="interactive session")
    c.add_argument("--session")
    c.add_argument("--workspace")

    m = sub.add_parser("model", help="the /model commands without a REPL")
    msub = m.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    ms = msub.add_parser("set", help="set the session's sticky model")
    ms.add_argument("model")
    ms.add_argument("--session", required=True)
    mc = msub.add_parser("clear", help="clear the sticky model")
    mc.add_argument("--session", required=True)
    mw = msub.add_parser("show", help="active model and the last turn's chain")
    mw.add_argument("--session", required=True)
    mw.add_argument("--json", action="store_true")

    r = sub.add_parser("rules", help="validate or show routing rules")
    rsub = r.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rc = rsub.add_parser("check", help="validate routing.yaml (+ models.yaml); works without a daemon")
    rc.add_argument("file", nargs="?")
    rc.add_argument("--models")
    rc.add_argument("--json", action="store_true")
    rw = rsub.add_parser("show", help="the active rules after validation")
    rw.add_argument("--json", action="store_true")
    rw.add_argument("--workspace")
    rsub.add_parser("reload", help="force re-reading routing.yaml")

    t = sub.add_parser("trace", help='"why this model?" for a turn')
    t.add_argument("turn_id")
    t.add_argument("--json", action="store_true")

    co = sub.add_parser("cost", help="cost by model and role")
    co.add_argument("--session")
    co.add_argument("--json", action="store_true")

    st = sub.add_parser("status", help="daemon health, actors, availability")
    st.add_argument("--json", action="store_true")

    av = sub.add_parser("availability", help="provider availability")
    avsub = av.add_subparsers(dest="availability_command", required=True, metavar="ACTION")
    ar = avsub.add_parser("reset", help="force a provider (or provider:model) back to healthy")
    ar.add_argument("scope")

    from .patterns_cli import add_subparser as add_patterns_parser
    add_patterns_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)
    try:
        try:
            return _dispatch(args)
        except BaseExceptionGroup as group:  # nurseries wrap; the user wants the one real error
            raise _sole_leaf(group) from None
    except CliError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return exc.code
    except DaemonUnreachable as exc:
        print(f"orchestrator: daemon not reachable ({exc}). Start it with `orchestrator serve` "
              "or `systemctl --user start orchestrator`.", file=sys.stderr)
        return EXIT_UNREACHABLE
    except RemoteError as exc:
        print(f"orchestrator: {exc.message} [{exc.code}]", file=sys.stderr)
        return EXIT_FAIL
    except EndpointRefused as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


def _sole_leaf(group: BaseExceptionGroup) -> BaseException:
    leaves = _leaves(group)
    interesting = [e for e in leaves if not isinstance(e, (trio.Cancelled, KeyboardInterrupt))] or leaves
    return interesting[0] if len(interesting) == 1 else group


def _dispatch(args) -> int:
    cmd = args.command
    if cmd == "serve":
        from .serve import run_serve
        return run_serve(args)
    if cmd == "demo":
        from .demo import run_demo
        return run_demo(json_output=args.json, fast=args.fast)
    if cmd == "rules" and args.rules_command == "check":
        return _rules_check(args)
    if cmd == "chat":
        from .chat import run_chat
        return run_chat(args)
    if cmd == "patterns":
        from .patterns_cli import run as run_patterns
        return run_patterns(args)
    return trio.run(_client_command, args)


def _print_json(obj) -> None:
    print(json.dumps(obj, default=str))


async def _client_command(args) -> int:
    async with open_client() as client:
        cmd = args.command
        if cmd == "ask":
            return await ask(client, " ".join(args.text), session=args.session, workspace=args.workspace,
                             as_json=args.json)
        if cmd == "model":
            if args.model_command == "set":
                state = await client.set_model(args.session, args.model)
            elif args.model_command == "clear":
                state = await client.clear_model(args.session)
            else:
                state = await client.show_model(args.session)
                if args.json:
                    _print_json(converter.unstructure(state))
                    return EXIT_OK
            print(render_model_state(state, with_trace=args.model_command == "show"))
            return EXIT_OK
        if cmd == "rules":
            report = await (client.reload_rules() if args.rules_command == "reload"
                            else client.rules(getattr(args, "workspace", None)))
            if getattr(args, "json", False):
                _print_json(converter.unstructure(report))
            else:
                print(render_rules(report))
            return EXIT_OK if report.ok else EXIT_FAIL
        if cmd == "trace":
            reply = await client.trace(args.turn_id)
            if args.json:
                _print_json(event_to_json_obj(reply.route))
            else:
                print(render_trace(reply.route))
            return EXIT_OK
        if cmd == "cost":
            report = await client.cost(args.session)
            if args.json:
                data = converter.unstructure(report)
                _print_json({"total_usd": data["total_usd"], "by_model": data["by_model"], "by_role": data["by_role"],
                             "tree": data["tree"], "unknown_cost_calls": data["unknown_cost_calls"]})
            else:
                print(render_cost(report, args.session))
            return EXIT_OK
        if cmd == "status":
            report = await client.status()
            if args.json:
                _print_json(converter.unstructure(report))
            else:
                print(render_status(report))
            return EXIT_OK
        if cmd == "availability":
            ack = await client.reset_availability(args.scope)
            print(f"{args.scope}: {ack.detail}")
            return EXIT_OK
    raise CliError(f"unknown command {cmd}", EXIT_USAGE)


async def ask(client, text: str, *, session: str | None, workspace: str | None, as_json: bool,
              out=None) -> int:
    """One turn, streamed. Ctrl-C cancels the turn (not the program) and waits for turn.cancelled."""
    out = out or sys.stdout
    info = await client.open_session(session, os.path.abspath(workspace) if workspace else None)
    code = EXIT_OK
    async with client.turn(info.session_id, text, workspace=workspace and os.path.abspath(workspace)) as turn:
        with _cancel_on_sigint(client, turn):
            async for event in turn:
                if as_json:
                    out.write(json.dumps(event_to_json_obj(event), default=str) + "\n")
                    out.flush()
                else:
                    _print_event(event, out)
                if isinstance(event, ev.TurnFailed):
                    code = EXIT_FAIL
    if not as_json:
        out.write("\n" if not isinstance(turn.terminal, ev.TurnFailed) else "")
        if turn.terminal is not None and not isinstance(turn.terminal, ev.TurnCompleted):
            pass
        print(f"[session {info.session_id} · turn {turn.turn_id}]", file=sys.stderr)
    return code


def _print_event(event, out) -> None:
    if isinstance(event, ev.TextDelta):
        out.write(event.text)
        out.flush()
    elif isinstance(event, ev.Banner):
        print(f"\n» {event.text}", file=sys.stderr)
    elif isinstance(event, ev.TurnStarted):
        print(f"→ {event.model}", file=sys.stderr)
    elif isinstance(event, ev.ToolCalled):
        print(f"\n⚙ {event.name}({json.dumps(event.input)[:200]})", file=sys.stderr)
    elif isinstance(event, ev.DelegateStarted):
        print(f"\n⇢ delegating to {event.tier} tier: {event.task[:120]}", file=sys.stderr)
    elif isinstance(event, ev.TurnFailed):
        print(f"\norchestrator: turn failed: {event.message} [{event.error}]", file=sys.stderr)
    elif isinstance(event, ev.TurnCancelled):
        print(f"\n[turn cancelled: {event.reason}]", file=sys.stderr)


class _cancel_on_sigint:
    """While a turn streams, Ctrl-C sends CancelTurn instead of killing the program."""

    def __init__(self, client, turn):
        self.client, self.turn = client, turn

    def __enter__(self):
        import signal

        self._token = trio.lowlevel.current_trio_token()
        self._old = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            self._token.run_sync_soon(self._spawn_cancel)

        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _spawn_cancel(self):
        trio.lowlevel.spawn_system_task(self._cancel)

    async def _cancel(self):
        try:
            await self.turn.cancel()
        except Exception:
            pass  # the turn may already be over

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _rules_check(args) -> int:
    from actors.config.files import check_files

    paths = resolve_paths()
    routing = Path(args.file) if args.file else paths.routing_file
    models = Path(args.models) if args.models else (routing.parent / "models.yaml" if args.file else paths.models_file)
    result = check_files(models, routing)
    if args.json:
        _print_json({"ok": not result.errors, "errors": list(result.errors), "warnings": list(result.warnings)})
    else:
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if result.errors:
            for e in result.errors:
                print(e)
        else:
            print("ok")
    return EXIT_FAIL if result.errors else EXIT_OK
