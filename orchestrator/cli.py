"""The ``orchestrator`` command line (DESIGN §4.1).

Exit codes: 0 success; 1 a failure the user can act on; 2 usage error; 3 daemon not reachable;
130 the turn was cancelled. Errors go to stderr as one clear line — also when stdout is a closed
pipe (``… | head``), which ends the command quietly with exit 0. An error nobody expected is one
line too, naming the exception; ``ORCHESTRATOR_DEBUG=1`` shows its traceback instead.
"""
from __future__ import annotations

# Only light imports here: ``serve`` installs its stop-signal latch before trio, zmq and the daemon
# are imported (see ``main``), and every command imports what it needs when it runs.
import argparse
import errno
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .exitcodes import EXIT_CANCELLED, EXIT_FAIL, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, CliError

if TYPE_CHECKING:
    from protocol.errors import RemoteError

__all__ = ["EXIT_CANCELLED", "EXIT_FAIL", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]

DEBUG_VAR = "ORCHESTRATOR_DEBUG"


def _workspace_arg(value: str) -> str | None:
    """--workspace as an absolute path, resolved while parsing so no async command touches the
    filesystem for it; an empty value means no workspace."""
    return os.path.abspath(value) if value else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orchestrator",
                                description="Route every agent turn to the right model, explainably.")
    p.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the daemon in the foreground")
    s.add_argument("--wire-mode", action="store_true", help=argparse.SUPPRESS)
    s.add_argument("--log-level", default=None)
    s.add_argument("--http", metavar="[HOST:]PORT", default=None,
                   help="also serve the OpenAI/Anthropic-compatible HTTP gateway (docs/gateway.md)")

    d = sub.add_parser("demo", help="offline guided tour on a temporary home")
    d.add_argument("--json", action="store_true", help="print the tour's events as JSON lines")
    d.add_argument("--fast", action="store_true", help="no streaming delays")

    a = sub.add_parser("ask", help="run one user turn and stream the answer")
    a.add_argument("--session")
    a.add_argument("--workspace", type=_workspace_arg)
    a.add_argument("--json", action="store_true", help="one JSON object per event")
    a.add_argument("--role", help="dispatch by role (roles.yaml): the model comes from the role's tier row")
    a.add_argument("--tier", help="with --role: the complexity tier (TRIVIAL, SMALL, MEDIUM, LARGE)")
    a.add_argument("--effort", metavar="EFFORT", type=str.lower,  # tiers are case-blind; efforts too
                   help="reasoning effort (minimal|low|medium|high|xhigh); ignored, with a note in the trace, "
                        "when the chosen model does not declare it in models.yaml")
    a.add_argument("text", nargs="+")

    c = sub.add_parser("chat", help="interactive session")
    c.add_argument("--session")
    c.add_argument("--workspace", type=_workspace_arg)

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

    i = sub.add_parser("init", help="write a starter home for real providers, then check it")
    i.add_argument("--provider", action="append", metavar="KIND",
                   help="anthropic | openai | openai_compatible | ollama (repeatable; default: the providers "
                        "whose key is set in this shell, else anthropic)")
    i.add_argument("--home", help="the config home to write (default: $ORCHESTRATOR_HOME or ~/.config/orchestrator)")
    i.add_argument("--force", action="store_true", help="overwrite existing files")
    i.add_argument("--base-url", help="openai_compatible / ollama: the server's URL (…/v1)")
    i.add_argument("--model", help="openai_compatible / ollama: the model name the server serves")
    i.add_argument("--api-key-env", help="openai_compatible / ollama: the variable holding its key (default: none)")

    ck = sub.add_parser("check", help="validate every config file in one pass; works without a daemon")
    ck.add_argument("files", nargs="*", metavar="FILE")
    ck.add_argument("--json", action="store_true")

    sv = sub.add_parser("service", help="install or remove the systemd unit")
    svsub = sv.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    for action, text in (("install", "check the config, then write the unit and the keys file"),
                         ("uninstall", "remove the unit")):
        sp = svsub.add_parser(action, help=text)
        scope = sp.add_mutually_exclusive_group()
        scope.add_argument("--user", dest="scope", action="store_const", const="user", help="a user unit (default)")
        scope.add_argument("--system", dest="scope", action="store_const", const="system", help="a system unit")
        sp.add_argument("--now", action="store_true", help="also run systemctl (enable and start / stop and disable)")
        sp.add_argument("--unit-dir", metavar="DIR",
                        help="use DIR instead of systemd's unit folder (also $ORCHESTRATOR_UNIT_DIR; for packaging)")

    r = sub.add_parser("rules", help="validate or show routing rules")
    rsub = r.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rc = rsub.add_parser("check", help="validate the config files (same as `orchestrator check`)")
    rc.add_argument("file", nargs="?")
    rc.add_argument("--models")
    rc.add_argument("--json", action="store_true")
    rw = rsub.add_parser("show", help="the active rules after validation")
    rw.add_argument("--json", action="store_true")
    rw.add_argument("--workspace", type=_workspace_arg)
    rsub.add_parser("reload", help="force re-reading routing.yaml")

    ro = sub.add_parser("route", help="answer a pattern-store suggestion (the chat's /route)")
    ro.add_argument("action", choices=("override", "ignore"))
    ro.add_argument("--session", required=True)

    ra = sub.add_parser("rate", help="rate a turn's answer for the pattern store (good, bad or 0..1)")
    ra.add_argument("turn_id")
    ra.add_argument("score")

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
    from .roles_cli import add_subparser as add_roles_parser
    add_roles_parser(sub)
    from .review_cli import add_subparser as add_review_parser
    add_review_parser(sub)
    from .workflows_cli import add_subparsers as add_workflows_parsers
    add_workflows_parsers(sub, _workspace_arg)
    from .keys_cli import add_subparser as add_keys_parser
    add_keys_parser(sub)
    from .worker_cli import add_subparser as add_worker_parser
    add_worker_parser(sub)
    from .loops_cli import add_subparser as add_loops_parser
    add_loops_parser(sub, _workspace_arg)
    from .migrate_cli import add_subparsers as add_migrate_parsers
    add_migrate_parsers(sub)
    from .delegate_cli import add_subparser as add_delegate_parser
    add_delegate_parser(sub, _workspace_arg)
    return p


def main(argv: list[str] | None = None) -> int:
    _reopen_closed_std_streams()
    args_list = sys.argv[1:] if argv is None else list(argv)
    latch = _serve_latch(args_list)
    try:
        try:
            code = _main(args_list, latch)
            _flush_stdout()
            return code
        except BaseExceptionGroup as group:  # nurseries wrap; the user wants the one real error
            raise _sole_leaf(group) from None
    except BrokenPipeError:
        # `… | head` closed our stdout: nobody reads on, which is not a failure — stop quietly.
        _settle_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    except Exception as exc:  # the last resort: one line, never a traceback, never silent
        if os.environ.get(DEBUG_VAR) == "1":
            raise
        print(f"orchestrator: {_last_resort_text(exc)}", file=sys.stderr)
        _settle_stdout()
        return EXIT_FAIL


def _reopen_closed_std_streams() -> None:
    """`orchestrator … >&-` starts Python with sys.stdout None: flushing it would be a traceback, and
    the first file we open would take descriptor 1. /dev/null takes the closed descriptor instead."""
    for name in ("stdin", "stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "r" if name == "stdin" else "w"))  # noqa: SIM115 — for the run


def _serve_latch(args: list[str]) -> object | None:
    """``serve`` holds SIGTERM/SIGINT from the very start — before trio, zmq and the daemon are
    imported — so a stop request during startup leads to a clean exit 0, not a kill."""
    if args[:1] != ["serve"]:
        return None
    import signal

    from .signals import SignalLatch

    current = signal.getsignal(signal.SIGTERM)
    if isinstance(current, SignalLatch):  # installed by ``python -m orchestrator`` already
        return current
    try:
        return SignalLatch.install()
    except ValueError:  # not the main thread (an in-process caller): run_serve installs its own
        return None


class StdoutUnwritable(OSError):
    """stdout takes no more output (a full disk, /dev/full, an I/O error)."""


def _flush_stdout() -> None:
    if sys.stdout is None:   # started with fd 1 closed (`>&-`): print() dropped the output, as Python does
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise StdoutUnwritable(exc.errno, exc.strerror) from None


def _last_resort_text(exc: Exception) -> str:
    if isinstance(exc, OSError):
        if isinstance(exc, StdoutUnwritable) or (exc.filename is None and exc.errno == errno.ENOSPC):
            return f"cannot write to stdout: {exc.strerror or exc}"
        where = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror or exc}{where}"
    return (f"unexpected error: {type(exc).__name__}: {exc} (a bug; set {DEBUG_VAR}=1 to see the "
            "traceback, and the daemon's log for its side)")


def _stdout_unwritable() -> bool:
    if sys.stdout is None:
        return False
    try:
        sys.stdout.flush()
    except OSError:
        return True
    return False


def _settle_stdout() -> None:
    """Point stdout at /dev/null if it cannot take more, so the interpreter's final flush does not
    raise (and print) the same error again."""
    if not _stdout_unwritable():
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _main(argv: list[str], latch: object | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)
    try:
        try:
            return _dispatch(args, latch)
        except BaseExceptionGroup as group:  # nurseries wrap; the user wants the one real error
            raise _sole_leaf(group) from None
    except CliError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        from protocol.errors import RemoteError

        from .client import DaemonUnreachable
        from .paths import EndpointRefused

        if isinstance(exc, DaemonUnreachable):
            print(f"orchestrator: daemon not reachable ({exc}). Start it with `orchestrator serve` "
                  "or `systemctl --user start orchestrator`.", file=sys.stderr)
            return EXIT_UNREACHABLE
        if isinstance(exc, RemoteError):
            print(f"orchestrator: {_remote_error_text(exc)}", file=sys.stderr)
            return EXIT_FAIL
        if isinstance(exc, EndpointRefused):
            print(f"orchestrator: {exc}", file=sys.stderr)
            return EXIT_FAIL
        raise


def _remote_error_text(exc: RemoteError) -> str:
    if exc.code in ("unknown_session", "unknown_turn"):
        return exc.message
    return f"{exc.message} [{exc.code}]"


def _sole_leaf(group: BaseExceptionGroup) -> BaseException:
    import trio

    from .client import _leaves

    leaves = _leaves(group)
    interesting = [e for e in leaves if not isinstance(e, (trio.Cancelled, KeyboardInterrupt))] or leaves
    return interesting[0] if len(interesting) == 1 else group


_DAEMON_COMMANDS = frozenset({"ask", "chat", "model", "rules", "trace", "cost", "status", "availability", "rate",
                              "route", "run", "mcp", "loop"})


def _check_edges(args: argparse.Namespace) -> None:
    """What the command line can refuse before anything runs: a usage error, one line, exit 2."""
    from protocol.bounds import SESSION_ID_RULE, is_valid_session_id

    session = getattr(args, "session", None)
    if session is not None and not is_valid_session_id(session):
        raise CliError(f"invalid session id {session!r}: use {SESSION_ID_RULE}", EXIT_USAGE)
    workspace = getattr(args, "workspace", None)
    if workspace is not None and not os.path.isdir(workspace):
        raise CliError(f"workspace {workspace} is not a directory", EXIT_USAGE)
    needs_daemon = args.command in _DAEMON_COMMANDS and not (
        args.command == "rules" and args.rules_command == "check")
    if needs_daemon:
        from .paths import check_endpoint_syntax

        check_endpoint_syntax(os.environ)


def _dispatch(args: argparse.Namespace, latch: object | None = None) -> int:
    _check_edges(args)
    cmd = args.command
    if cmd == "serve":
        from .serve import run_serve
        return run_serve(args, latch)
    if cmd == "demo":
        from .demo import run_demo
        return run_demo(json_output=args.json, fast=args.fast)
    if cmd == "rules" and args.rules_command == "check":
        return _check(args, [args.file] if args.file else [], models=args.models, routing_default=True)
    if cmd == "check":
        return _check(args, args.files)
    if cmd == "init":
        return _init(args)
    if cmd == "service":
        return _service(args)
    if cmd == "chat":
        from .chat import run_chat
        return run_chat(args)
    if cmd == "patterns":
        from .patterns_cli import run as run_patterns
        return run_patterns(args)
    if cmd == "roles":
        from .roles_cli import run as run_roles
        return run_roles(args)
    if cmd == "review":
        from .review_cli import run as run_review
        return run_review(args)
    if cmd == "loop":
        from .loops_cli import run as run_loops
        return run_loops(args)
    if cmd in ("migrate", "export", "import"):
        from .migrate_cli import run as run_migrate
        return run_migrate(args)
    if cmd == "delegate":
        from .delegate_cli import run as run_delegate
        return run_delegate(args)
    if cmd in ("run", "mcp"):
        from .workflows_cli import run as run_workflows
        return run_workflows(args)
    if cmd == "keys":
        from .keys_cli import run as run_keys
        return run_keys(args)
    if cmd == "worker":
        from .worker_cli import run as run_worker
        return run_worker(args)
    import trio

    return trio.run(_client_command, args)


def _print_json(obj) -> None:
    print(json.dumps(obj, default=str))


async def _client_command(args) -> int:
    from protocol.codec import converter, event_to_json_obj

    from .render import render_cost, render_model_state, render_rules, render_trace
    from protocol.errors import RemoteError

    from .client import open_client
    from .streaming import ask

    if args.command == "ask":
        _check_message(" ".join(args.text))
        _check_role_args(args)
    score = 0.0
    if args.command == "rate":
        from .rating import SCORE_USAGE, parse_score
        parsed = parse_score(args.score)
        if parsed is None:
            raise CliError(f"invalid score {args.score!r}: {SCORE_USAGE}", EXIT_USAGE)
        score = parsed
    async with open_client() as client:
        cmd = args.command
        if cmd == "ask":
            return await ask(client, " ".join(args.text), session=args.session, workspace=args.workspace,
                             as_json=args.json, role=args.role, tier=args.tier, effort=args.effort)
        if cmd == "model":
            if args.model_command == "set":  # `model set` acts on a session; chat/ask create them
                await _known_session(client, args.session)
                state = await client.set_model(args.session, args.model)
                from .model_hints import warn_if_not_configured

                await warn_if_not_configured(client, state)
            elif args.model_command == "clear":
                await _known_session(client, args.session)
                state = await client.clear_model(args.session)
            else:
                state = await _known_session(client, args.session)
                if args.json:
                    _print_json(converter.unstructure(state))
                    return EXIT_OK
            print(render_model_state(state, with_trace=args.model_command == "show"))
            return EXIT_OK
        if cmd == "rules":
            if args.rules_command == "reload":
                return await _reload(client)
            report = await client.rules(getattr(args, "workspace", None))   # absolute: resolved by the parser
            if getattr(args, "json", False):
                _print_json(converter.unstructure(report))
            else:
                print(render_rules(report))
            return EXIT_OK if report.ok else EXIT_FAIL
        if cmd == "trace":
            try:
                reply = await client.trace(args.turn_id)
            except RemoteError as exc:
                if exc.code == "unknown_turn":
                    raise CliError(f"unknown turn {args.turn_id!r}") from None
                raise
            if args.json:
                obj = event_to_json_obj(reply.route)
                if reply.fallback:  # a mid-turn fallback (docs/workflows.md): the later decisions
                    obj["fallback"] = [event_to_json_obj(r) for r in reply.fallback]
                _print_json(obj)
            else:
                print(render_trace(reply.route, reply.fallback))
            return EXIT_OK
        if cmd == "cost":
            if args.session:
                await _known_session(client, args.session)
            report = await client.cost(args.session)
            if args.json:
                data = converter.unstructure(report)
                _print_json({"total_usd": data["total_usd"], "by_model": data["by_model"], "by_role": data["by_role"],
                             "tree": data["tree"], "unknown_cost_calls": data["unknown_cost_calls"]})
            else:
                print(render_cost(report, args.session))
            return EXIT_OK
        if cmd == "status":
            return await _status(client, args.json)
        if cmd == "route":
            from protocol.messages import RouteChoice

            from .rating import override_message
            await _known_session(client, args.session)
            choice = await client.request("router", RouteChoice(args.session, args.action))
            print(choice.detail, file=sys.stderr if choice.ok and choice.model else sys.stdout)
            if not choice.ok:
                return EXIT_FAIL
            if choice.model:   # override: the turn re-runs on the suggestion, streamed like `ask`
                return await ask(client, override_message(choice.model, choice.text), session=args.session,
                                 workspace=None, as_json=False)
            return EXIT_OK
        if cmd == "rate":
            from .rating import rate, rated_line
            try:
                print(rated_line(await rate(client, args.turn_id, score)))
            except RemoteError as exc:
                if exc.code == "unknown_turn":
                    raise CliError(f"unknown turn {args.turn_id!r}") from None
                raise
            return EXIT_OK
        if cmd == "availability":
            await _known_scope(client, args.scope)
            ack = await client.reset_availability(args.scope)
            print(f"{args.scope}: {ack.detail}")
            return EXIT_OK
    raise CliError(f"unknown command {cmd}", EXIT_USAGE)


async def _known_session(client, session_id: str):
    """One rule for every command about an existing session: unknown → exit 1, "unknown session"."""
    from protocol.errors import RemoteError

    try:
        return await client.show_model(session_id)
    except RemoteError as exc:
        if exc.code == "unknown_session":
            raise CliError(f"unknown session {session_id!r}") from None
        raise


def _check_message(text: str) -> None:
    """An empty message — also one that is only an @alias — is a usage error: no turn, no bill."""
    words = text.split()
    if not words or (len(words) == 1 and words[0].startswith("@")):
        what = f"{words[0]} with no text" if words else "nothing to send"
        raise CliError(f"empty message: {what} (usage: orchestrator ask [@ALIAS] TEXT)", EXIT_USAGE)


async def _known_scope(client, scope: str) -> None:
    """``availability reset`` takes a provider or a provider:model of the daemon's registry."""
    from actors.config.files import check_registry_text, read_text

    report = await client.rules()
    models_path = report.source.get("models")
    try:
        text = read_text(models_path) if models_path else None
    except (OSError, UnicodeDecodeError):
        text = None
    if text is None:
        return  # cannot tell from here: let the daemon decide
    registry = check_registry_text(text).registry
    if scope not in registry.providers and scope not in registry.models:
        raise CliError(f"unknown scope {scope!r}: not a provider or model of {models_path}")


async def _reload(client) -> int:
    """``rules reload``: re-read the files and say what changed."""
    from .render import render_reload

    report = await client.reload_rules()
    for line in render_reload(report):
        print(line)
    return EXIT_OK if report.ok else EXIT_FAIL


async def _status(client, as_json: bool) -> int:
    import attrs

    from protocol.codec import converter

    from .paths import resolve_paths
    from .render import render_config_health, render_status
    from .service import installed_units

    from .settings import SettingsError, load_settings

    report = await client.status()
    rules = await client.rules()
    units = [str(u) for u in installed_units(os.environ)]
    try:  # read once at start: an edit since then is checked here, on disk
        load_settings(resolve_paths().daemon_file)
    except SettingsError as exc:
        rules = attrs.evolve(rules, ok=False, errors=(*rules.errors, *str(exc).splitlines()))
    if as_json:
        data = converter.unstructure(report)
        data["config"] = {"ok": rules.ok, "errors": list(rules.errors), "files": rules.source}
        data["not_configured"] = rules.not_configured
        data["waiting_approval"] = list(rules.waiting_approval)
        data["service"] = {"installed": bool(units), "units": units}
        _print_json(data)
        return EXIT_OK
    print(render_status(report))
    from .loops_cli import render_status_loops
    print(render_status_loops(report.loops))
    if report.workers:   # only a daemon with connected remote workers has this section
        from .worker_cli import render_status_workers
        print(render_status_workers(report.workers))
    print(render_config_health(rules, units))
    return EXIT_OK


def _check_role_args(args) -> None:
    """``ask --role R [--tier T]``: a tier needs a role, and is one of the four (usage errors, exit 2)."""
    if args.tier is not None and not args.role:
        raise CliError("--tier goes with --role (usage: orchestrator ask --role ROLE [--tier T] TEXT)", EXIT_USAGE)
    if args.role is not None and not args.role.strip():
        raise CliError("--role needs a role name of roles.yaml", EXIT_USAGE)
    if args.tier is not None:
        from actors.roles import RoleError, normalize_tier
        try:
            args.tier = normalize_tier(args.tier)
        except RoleError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None


def _check(args, files: list[str], *, models: str | None = None, routing_default: bool = False) -> int:
    from .paths import resolve_paths
    from .check import check_home, print_report

    paths = resolve_paths()
    report = check_home(paths.home, files, models_override=models, routing_default=routing_default)
    if getattr(args, "json", False):
        _print_json({"ok": report.ok, "errors": list(report.errors), "warnings": list(report.warnings),
                     "files": list(report.files)})
    else:
        print_report(report)
    return EXIT_OK if report.ok else EXIT_FAIL


def _init(args) -> int:
    from .paths import resolve_paths
    from .init import InitError, run_init

    home = Path(args.home).expanduser() if args.home else resolve_paths().home
    try:
        return run_init(args, home.absolute())
    except InitError as exc:
        raise CliError(str(exc), exc.code) from None


def _service(args) -> int:
    from .paths import resolve_paths
    from .service import ServiceError, install, uninstall

    scope = args.scope or "user"
    try:
        if args.service_command == "install":
            lines = install(resolve_paths(), scope=scope, now=args.now, unit_dir_override=args.unit_dir)
        else:
            lines = uninstall(scope=scope, now=args.now, unit_dir_override=args.unit_dir)
    except (ServiceError, OSError) as exc:
        raise CliError(str(exc)) from None
    print("\n".join(lines))
    return EXIT_OK
