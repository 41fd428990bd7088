"""``orchestrator delegate show|consent|revoke|reset`` (docs/delegation.md).

Works on the state database directly, with or without a running daemon: consent is the user's
decision on a terminal, stored where the model cannot write (not in the workspace, which
``run_command`` could). ``consent`` shows the blast radius and asks y/N (``--yes`` for scripts;
no terminal and no ``--yes`` → no consent).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from actors.config.files import load_files
from actors.config.registry import ModelRegistry
from actors.delegate import gitio, state
from actors.delegate.config import DelegateConfig
from actors.delegate.consent import BlastRadius, consent_hint
from actors.delegate.review import reviewer_for
from actors.delegate.tool import radius_for
from actors.runtime.store import Store
from actors.tools.workspace import SETTINGS_FILE, SettingsCache

from .exitcodes import EXIT_OK, CliError


def add_subparser(sub: argparse._SubParsersAction, workspace_arg) -> None:
    d = sub.add_parser("delegate", help="delegation to a command-line coding agent: consent and state "
                                        "(docs/delegation.md)")
    dsub = d.add_subparsers(dest="delegate_command", required=True, metavar="ACTION")
    show = dsub.add_parser("show", help="the workspace's delegate config, blast radius and consent")
    consent = dsub.add_parser("consent", help="show the blast radius and consent to it (one-time per workspace)")
    revoke = dsub.add_parser("revoke", help="withdraw the workspace's consent")
    reset = dsub.add_parser("reset", help="close a session's circuit breaker")
    for p in (show, consent, revoke):
        p.add_argument("--workspace", type=workspace_arg, metavar="DIR",
                       help="the workspace (default: the current directory)")
        p.add_argument("--json", action="store_true")
    show.add_argument("--session", metavar="S", help="also show this session's breaker and escalated tasks")
    consent.add_argument("--yes", action="store_true", help="consent without asking (scripts)")
    reset.add_argument("--session", required=True, metavar="S")
    reset.add_argument("--json", action="store_true")


def _open_store() -> Store:
    from .paths import resolve_paths

    return Store(resolve_paths(os.environ).database)


def _registry() -> ModelRegistry:
    from .paths import resolve_paths

    paths = resolve_paths(os.environ)
    checked = load_files(str(paths.models_file), str(paths.routing_file), home=str(paths.home))
    if checked.registry is None:
        raise CliError("; ".join(checked.errors) or "models.yaml could not be loaded")
    return checked.registry


def _config(workspace: str) -> DelegateConfig:
    settings = SettingsCache().load(workspace)
    delegate_errors = [e for e in settings.errors if ": delegate" in e]
    # Invalid YAML, an unreadable file, not a mapping: the whole file is ignored, delegate: with it.
    file_errors = [e for e in settings.errors if not re.match(rf"{re.escape(SETTINGS_FILE)}: [a-z_]+[:.]", e)]
    if delegate_errors or file_errors:
        raise CliError("; ".join(delegate_errors + file_errors))
    if settings.delegate is None:
        raise CliError(f"delegation is off in {workspace}: there is no delegate: section in {SETTINGS_FILE} "
                       "(docs/delegation.md)")
    return settings.delegate


def _radius(workspace: str, config: DelegateConfig, registry: ModelRegistry) -> BlastRadius:
    for glob in config.allow:   # `src` meant as a folder would match only a file named src
        if not any(c in glob for c in "*?") and os.path.isdir(os.path.join(workspace, glob)):
            raise CliError(f"{SETTINGS_FILE}: delegate.allow: {glob!r} is a folder, which matches no file: "
                           f"write {glob.rstrip('/') + '/**'!r}")
    radius = radius_for(config, registry, workspace)
    if isinstance(radius, str):
        raise CliError(radius)
    return radius


def _review(config: DelegateConfig, registry: ModelRegistry) -> str:
    """Who reviews accepted changes, as `delegate show` says it; a broken spec says why."""
    if not config.review:
        return "none (no delegate.review)"
    choice = reviewer_for(config, config.agent, registry)
    if choice.skipped:
        return "none (" + "; ".join(choice.notes) + ")"
    if not choice.ok or choice.model is None:
        return f"cannot run: {choice.error or 'no reviewer'} (accepted changes go unreviewed)"
    return choice.model + (f" ({'; '.join(choice.notes)})" if choice.notes else "")


def _repository_problem(workspace: str) -> str | None:
    try:
        gitio.check_repository(workspace)
    except gitio.GitProblem as exc:
        return str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    if args.delegate_command == "reset":
        store = _open_store()
        state.put_breaker(store, args.session, state.BreakerState())
        _emit(args.json, {"session": args.session, "breaker": "closed"}, f"breaker closed for session {args.session}")
        return EXIT_OK
    workspace = os.path.realpath(args.workspace or os.getcwd())
    if args.delegate_command == "revoke":
        had = state.revoke_consent(_open_store(), workspace)
        _emit(args.json, {"workspace": workspace, "revoked": had},
              f"consent revoked for {workspace}" if had else f"no consent was stored for {workspace}")
        return EXIT_OK
    config, registry = _config(workspace), _registry()
    radius = _radius(workspace, config, registry)
    store = _open_store()
    problem = _repository_problem(workspace)
    if args.delegate_command == "show":
        return _show(args, store, radius, problem, _review(config, registry))
    if problem is not None:   # consent to a radius that cannot work would only fail later, at a call
        raise CliError(f"delegation cannot work in {workspace}: {problem}")
    print("Delegation to a command-line coding agent — blast radius:", file=sys.stderr if args.json else sys.stdout)
    for line in radius.describe():
        print("  " + line, file=sys.stderr if args.json else sys.stdout)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("consent needs a terminal to ask on, or --yes")
        question = "Allow this agent to change these files in this directory? [y/N] "
        try:
            if args.json:   # stdout carries only the JSON answer
                print(question, end="", file=sys.stderr, flush=True)
                answer = sys.stdin.readline()
            else:
                answer = input(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            raise CliError("no consent given: delegation stays off")
    state.grant_consent(store, radius)
    _emit(args.json, {"workspace": workspace, "consented": True, "radius": radius.as_json()},
          f"consent stored for {workspace} (withdraw with `orchestrator delegate revoke --workspace {workspace}`)")
    return EXIT_OK


def _show(args: argparse.Namespace, store: Store, radius: BlastRadius, problem: str | None, review: str) -> int:
    consent = state.get_consent(store, radius.directory)
    status = ("missing" if consent is None else "granted" if consent.fingerprint == radius.fingerprint()
              else "stale (the blast radius changed since)")
    data: dict[str, object] = {"workspace": radius.directory, "radius": radius.as_json(), "consent": status.split()[0],
                               "repository": problem or "ok", "review": review}
    if args.session:
        breaker = state.get_breaker(store, args.session)
        data["breaker"] = {"open": breaker.is_open, "reason": breaker.open_reason, "failures": breaker.failures}
        data["escalated_tasks"] = state.escalated_tasks(store, args.session)
    if args.json:
        print(json.dumps(data))
        return EXIT_OK
    for line in radius.describe():
        print(line)
    print(f"reviewed by:  {review}")
    if problem is not None:
        print(f"repository:   {problem}")
    print(f"consent:      {status}" + ("" if status == "granted" or problem else
                                       f" — run `{consent_hint(radius.directory)}`"))
    if args.session:
        b = data["breaker"]
        assert isinstance(b, dict)
        print(f"breaker:      {'open: ' + str(b['reason']) if b['open'] else 'closed'} "
              f"({b['failures']} failure(s) in a row)")
        escalated = data["escalated_tasks"]
        assert isinstance(escalated, dict)
        for task_id, why in escalated.items():
            print(f"escalated:    {task_id}: {why}")
    return EXIT_OK


def _emit(as_json: bool, data: dict[str, object], text: str) -> None:
    print(json.dumps(data) if as_json else text)
