"""``orchestrator run WORKFLOW --input TEXT …`` and ``orchestrator mcp`` (DESIGN §4.9).

``run --json`` prints every step's events as JSON lines (each with a ``step`` field) and ends with
one terminal line, ``workflow.completed`` or ``workflow.failed``. Ctrl-C (or SIGTERM / SIGHUP)
cancels every running step in the daemon, waits for their ``turn.cancelled`` and exits 130.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from .exitcodes import EXIT_CANCELLED, EXIT_FAIL, EXIT_OK, EXIT_USAGE, CliError
from .argtypes import positive_seconds

if TYPE_CHECKING:  # trio is imported where it runs: `run --help` stays quick
    import trio


def add_subparsers(sub: argparse._SubParsersAction, workspace_arg) -> None:
    r = sub.add_parser("run", help="run a workflow (qc, or one of workflows.yaml) through the daemon")
    r.add_argument("workflow")
    r.add_argument("--input", required=True, help="the task")
    r.add_argument("--stakes", choices=("low", "normal", "high"), default="normal")
    r.add_argument("--time-budget", type=positive_seconds, metavar="S", help="seconds; under 30 runs a single model")
    r.add_argument("--workspace", type=workspace_arg)
    r.add_argument("--creative", action="store_true", help="creative or subjective work: no cross-check")
    r.add_argument("--has-tests", action="store_true",
                   help="the task's tests stand in for the cross-check (implied by a tests/ folder in --workspace)")
    r.add_argument("--json", action="store_true", help="events as JSON lines, then workflow.completed|failed")
    m = sub.add_parser("mcp", help="an MCP server on stdio: run_workflow, delegate, review, cost, trace")
    m.add_argument("--max-concurrent", type=int, default=None,
                   help="cap on agents running at once (default: $ORCHESTRATOR_MCP_MAX_CONCURRENT or 4)")


def run(args: argparse.Namespace) -> int:
    import trio

    if args.command == "mcp":
        from .mcp_server import run_mcp
        return run_mcp(args.max_concurrent)
    if not args.input.strip():
        raise CliError("--input is empty: give the task to run", EXIT_USAGE)
    return trio.run(_run, args)


async def _run(args: argparse.Namespace) -> int:
    import trio

    from actors.workflows import RunContext

    from .client import open_client
    from .paths import resolve_paths
    from .workflows_run import ConfigProblem, WorkflowFailed, WorkflowRunner, load_home_config, workspace_has_tests

    try:
        home = load_home_config(resolve_paths().home)
    except ConfigProblem as exc:
        raise CliError(f"{exc} (run `orchestrator check`)") from None
    if args.workflow not in home.workflows.workflows:
        raise CliError(f"no workflow named {args.workflow!r} (defined: {', '.join(sorted(home.workflows.workflows))})")
    ctx = RunContext(stakes=args.stakes, time_budget_s=args.time_budget,
                     has_tests=args.has_tests or workspace_has_tests(args.workspace), creative=args.creative)
    emit = _json_line if args.json else _text_event
    async with open_client() as client:
        runner = WorkflowRunner(client, home.workflows, home.registry, home.roles, workspace=args.workspace,
                                emit=emit)
        with trio.CancelScope() as scope, _on_signals(scope):
            try:
                result = await runner.run(args.workflow, args.input, ctx)
            except WorkflowFailed as exc:
                _terminal(exc.as_event(), args.json)
                return EXIT_FAIL
        if scope.cancelled_caught:
            _terminal({"type": "workflow.failed", "error": "cancelled",
                       "message": "cancelled by the user; every running step was cancelled"}, args.json)
            return EXIT_CANCELLED
    _terminal({"type": "workflow.completed", "result": result}, args.json)
    if not args.json:
        print(result["output"])
    return EXIT_OK


async def chat_run(client, words: list[str]) -> None:
    """The chat's ``/run WORKFLOW TEXT``: the steps on stderr, the answer and provenance after."""
    import trio

    from actors.workflows import RunContext

    from .paths import resolve_paths
    from .workflows_run import ConfigProblem, WorkflowFailed, WorkflowRunner, load_home_config

    if len(words) < 2:
        print("usage: /run WORKFLOW TEXT (e.g. /run qc summarise the design)")
        return
    try:
        home = await trio.to_thread.run_sync(load_home_config, resolve_paths().home)
        runner = WorkflowRunner(client, home.workflows, home.registry, home.roles, emit=_text_event)
        result = await runner.run(words[0], " ".join(words[1:]), RunContext())
    except ConfigProblem as exc:
        print(f"error: {exc} (/rules check)")
        return
    except WorkflowFailed as exc:
        print(f"workflow failed: {exc.message} [{exc.error}]")
        return
    print(result["output"])
    _terminal({"type": "workflow.completed", "result": result}, False)


def _json_line(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def _text_event(obj: dict) -> None:
    """The text form: one line per step start and end on stderr; the answer comes at the end."""
    kind, step = obj.get("type"), obj.get("step")
    if kind == "turn.started":
        print(f"→ {step}: {obj.get('model')}", file=sys.stderr)
    elif kind == "turn.failed":
        print(f"✗ {step}: {obj.get('error')}: {obj.get('message', '').splitlines()[0] if obj.get('message') else ''}",
              file=sys.stderr)


def _terminal(obj: dict, as_json: bool) -> None:
    if as_json:
        _json_line(obj)
        return
    if obj["type"] == "workflow.failed":
        print(f"orchestrator: workflow failed: {obj['message']} [{obj['error']}]", file=sys.stderr)
        return
    result = obj["result"]
    for p in result["provenance"]:
        what = p["model"] if p["status"] == "run" else "skipped"
        print(f"· {p['step']}: {what} — {p['reason']}", file=sys.stderr)
    conf, n = result["confidence"], result["steps_completed"]
    print(f"[{n} step{'' if n == 1 else 's'} · confidence {conf if conf is not None else 'not stated'}]",
          file=sys.stderr)


class _on_signals:
    """Ctrl-C, SIGTERM and SIGHUP cancel the run's scope: each running step then cancels its turn
    in the daemon (bounded, shielded) before the command exits 130."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self._old: dict = {}

    def __enter__(self):
        import signal

        import trio

        token = trio.lowlevel.current_trio_token()

        def handler(signum, frame):
            token.run_sync_soon(self.scope.cancel)

        for name in self.SIGNALS:
            sig = getattr(signal, name)
            try:
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, handler)
            except ValueError:      # not the main thread
                self._old.pop(sig, None)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)
