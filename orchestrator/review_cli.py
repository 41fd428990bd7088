"""``orchestrator review backend`` and ``orchestrator review`` (DESIGN §4.8, docs/review.md).

``review backend`` resolves the spec without a daemon (from the flag, the environment, the
workspace's and the home's config, the routing default). ``review`` takes the workspace's git
diff, picks the reviewer (cross-family rule, ``actors.review.choose``), and runs ONE turn
through the daemon — routed (the reviewer is pinned with an ``@model`` override), traced (the
pick is noted in its route.decided), costed — in a fresh session without a workspace: the
reviewer gets no tools, cannot touch the files, and its turn is never mistaken for the writer's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from actors.config.files import load_files, read_text
from actors.config.registry import ModelRegistry
from actors.review.choose import Choice, choose_reviewer, family_of
from actors.review.config import review_config_text
from actors.review.precedence import ENV_VAR, Layer, Resolved, default_spec, resolve
from actors.review.verdict import Review, UnparseableReview, parse_review, review_prompt

from .exitcodes import EXIT_CANCELLED, EXIT_OK, EXIT_USAGE, CliError

WORKSPACE_SETTINGS = ".orchestrator/workspace.yaml"
EMPTY_DIFF_NOTE = "empty diff: nothing to review (verdict SHIP, no turn run)"
ANSWER_EXCERPT_CHARS = 200


class ReviewCancelled(Exception):
    """Ctrl-C (or SIGTERM/SIGHUP) cancelled the review turn in the daemon: exit 130."""


def add_subparser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("review", help="review the workspace's git diff on another model family",
                       description="Review the workspace's git diff (untracked files included) against --base on "
                                   "a model of another family than the writer's; prints the verdict SHIP, "
                                   "NEEDS_WORK or MAJOR_RETHINK and the findings. Exit 0 for every verdict, 1 when "
                                   "the review could not run, 3 when the daemon is not reachable (docs/review.md).")
    _common(r)
    r.add_argument("--base", default="HEAD", metavar="REV", help="the revision to diff against (default HEAD)")
    r.add_argument("--writer", metavar="MODEL",
                   help="the model that wrote the change (default: the model of the workspace's last turn)")
    rsub = r.add_subparsers(dest="review_command", metavar="[backend]")
    b = rsub.add_parser("backend", help="print the resolved review spec and where it came from",
                        description="Print the review spec that applies (task → spec → env → config → default) "
                                    "and where it came from; no daemon needed.")
    _common(b)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", metavar="SPEC", help="backend[:model[:effort]] for this review (the per-task layer)")
    p.add_argument("--workspace", type=lambda v: os.path.abspath(v) if v else None, metavar="DIR",
                   help="the workspace (default: the current directory)")
    p.add_argument("--json", action="store_true", help="one JSON object (DESIGN §4.8)")


# --- resolving the spec (no daemon) -------------------------------------------------------------

@attrs.frozen
class Setup:
    registry: ModelRegistry
    resolved: Resolved


def load_setup(backend: str | None, workspace: str, env: Mapping[str, str] | None = None,
               spec_backend: str | None = None) -> Setup:
    """The registry and the resolved spec; a broken file or spec raises CliError (exit 1)."""
    from .paths import resolve_paths

    env = os.environ if env is None else env
    paths = resolve_paths(env)
    checked = load_files(str(paths.models_file), str(paths.routing_file), home=str(paths.home))
    if checked.registry is None or checked.errors:
        raise CliError("; ".join(checked.errors) or "models.yaml could not be loaded")
    registry = checked.registry
    config = _config_layer(workspace, str(paths.daemon_file))
    default = default_spec(checked.policy.global_default if checked.policy else None, registry)
    layers = [Layer("task", backend, "--backend"), Layer("spec", spec_backend, "spec"),
              Layer("env", env.get(ENV_VAR), ENV_VAR), config,
              Layer("default", default, "routing.yaml global_default")]
    resolved = resolve(layers, registry)
    if not resolved.ok:
        raise CliError("; ".join(resolved.errors))
    return Setup(registry, resolved)


def _config_layer(workspace: str, daemon_file: str) -> Layer:
    """The workspace's ``review:`` wins over daemon.yaml's: it is the more specific of the two."""
    for path, shown in ((os.path.join(workspace, WORKSPACE_SETTINGS), WORKSPACE_SETTINGS),
                        (daemon_file, "daemon.yaml")):
        try:
            text = read_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{shown}:1: cannot read file: {exc}") from None
        found = review_config_text(text, shown)
        if found.errors:
            raise CliError("; ".join(found.errors))
        if found.backend is not None:
            return Layer("config", found.backend, found.origin)
    return Layer("config", None)


def backend_json(resolved: Resolved) -> dict[str, Any]:
    spec = resolved.spec
    assert spec is not None
    return {"spec": spec.text(), "backend": spec.backend, "model": spec.model, "effort": spec.effort,
            "source": resolved.source}


def _warn(lines) -> None:
    for line in lines:
        print(f"orchestrator: warning: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.backend is not None and not args.backend.strip():
        # Blank counts as unset for the environment variable, but a flag given empty is a mistake
        # (`--backend "$UNSET"`): falling through would review on a model nobody chose.
        raise CliError("--backend: empty review spec (expected backend[:model[:effort]], e.g. codex or none)",
                       EXIT_USAGE)
    workspace = args.workspace or os.getcwd()
    setup = load_setup(args.backend, workspace)
    _warn(setup.resolved.warnings)
    if args.review_command == "backend":
        data = backend_json(setup.resolved)
        if args.json:
            print(json.dumps(data))
        else:
            where = f" ({setup.resolved.origin})" if setup.resolved.origin else ""
            print(f"{data['spec']}  [source: {data['source']}{where}]")
        return EXIT_OK
    import trio

    from .paths import check_endpoint_syntax
    from .review_git import GitError, workspace_change

    check_endpoint_syntax(os.environ)
    # Backend none and an empty diff are SHIP without a turn: no daemon needed (a CI gate must not
    # fail on one it never uses).
    disabled = choose_reviewer(setup.resolved, setup.registry, None)
    if disabled.skipped:
        return _print_result(args.json, Review("SHIP"), None, None, disabled.notes)
    try:
        change = workspace_change(workspace, args.base)
    except GitError as exc:
        raise CliError(str(exc)) from None
    if change.empty:
        return _print_result(args.json, Review("SHIP"), None, None, (EMPTY_DIFF_NOTE,))
    return trio.run(_review, args, workspace, setup, change)


# --- the review turn -------------------------------------------------------------------------------

async def _review(args: argparse.Namespace, workspace: str, setup: Setup, change) -> int:
    from .client import open_client

    async with open_client() as client:
        writer = await _writer(client, args.writer, workspace, setup.registry)
        unusable = (await client.rules()).not_configured
        choice = choose_reviewer(setup.resolved, setup.registry, writer, unusable)
        if not choice.ok:
            raise CliError(str(choice.error))
        if choice.model is not None and choice.model in unusable:
            # Pinned with @model it would be rejected and routing would fall through to whatever
            # the chain picks — maybe the writer's family: refuse before spending a turn on it.
            raise CliError(f"reviewer {choice.model} cannot run: {unusable[choice.model]}")
        # The pick is said before the turn runs: a review that then fails still tells whom it asked.
        _print_notes(choice.notes)
        if writer is None:
            _print_notes(("writer unknown (no turn in this workspace; --writer MODEL names it): the cross-family "
                          "rule has no family to keep apart",))
        prompt = review_prompt(change.diff, base=change.base, workspace=workspace, untracked=change.untracked)
        try:
            answer, served, turn_id = await _run_turn(client, choice, prompt)
        except ReviewCancelled as exc:
            print(f"orchestrator: {exc}", file=sys.stderr)
            return EXIT_CANCELLED
    assert choice.model is not None
    if served != choice.model:
        # The pinned reviewer was unavailable and routing fell through: never onto the writer's family.
        if writer and family_of(served, setup.registry) == family_of(writer, setup.registry) \
                and family_of(choice.model, setup.registry) != family_of(writer, setup.registry):
            raise CliError(f"reviewer {choice.model} was unavailable and the turn fell through to {served}, the "
                           f"writer's family: not a cross-family review (turn {turn_id})")
        # Said now, not with the result: an answer that then fails to parse came from this model.
        _print_notes((f"reviewer {choice.model} was unavailable; {served} reviewed instead",))
    try:
        review = parse_review(answer)
    except UnparseableReview as exc:
        raise CliError(f"{exc} (turn {turn_id}; `orchestrator trace {turn_id}` shows the route); "
                       f"the answer began: {_excerpt(answer)}") from None
    return _print_result(args.json, review, served, turn_id, ())


def _excerpt(answer: str) -> str:
    flat = " ".join(answer.split())
    if not flat:
        return "(empty)"
    return repr(flat if len(flat) <= ANSWER_EXCERPT_CHARS else flat[:ANSWER_EXCERPT_CHARS] + "…")


def _related(session_workspace: str, workspace: str) -> bool:
    """A session's workspace is the reviewed one, encloses it (``review`` run in a subfolder) or
    lies inside it: its turns may have written the change under review."""
    try:
        common = os.path.commonpath([os.path.realpath(session_workspace), os.path.realpath(workspace)])
    except ValueError:
        return False
    return common in (os.path.realpath(session_workspace), os.path.realpath(workspace))


async def _writer(client, given: str | None, workspace: str, registry: ModelRegistry) -> str | None:
    """``--writer``, else the model that served the last turn of a session in this workspace (or one
    enclosing it, or inside it)."""
    if given:
        spec = registry.resolve(given)
        if spec is None:
            raise CliError(f"unknown writer model {given!r}: not a model id or alias of models.yaml")
        return spec.id
    from protocol.messages import ListSessions

    listing = await client.request("session", ListSessions())
    latest: tuple[str, str] | None = None
    for info in listing.sessions:
        if not info.workspace or not _related(info.workspace, workspace):
            continue
        route = (await client.show_model(info.session_id)).last_route
        if route is not None and route.chosen_model and (latest is None or route.timestamp >= latest[0]):
            latest = (route.timestamp, route.chosen_model)
    return latest[1] if latest else None


async def _run_turn(client, choice: Choice, prompt: str) -> tuple[str, str, str]:
    """(the answer, the model that served, the turn id); a failed turn is a CliError."""
    from protocol import events as ev

    from .streaming import USER_CANCEL_REASONS, _cancel_on_sigint

    info = await client.open_session(None, None)
    text: list[str] = []
    served = choice.model
    async with client.turn(info.session_id, f"@{choice.model} {prompt}", effort=choice.effort,
                           trace_notes=choice.notes) as turn:
        # Ctrl-C cancels the review turn in the daemon — a reviewer (often a command-line agent)
        # must not run on, and bill, for a client that is gone.
        with _cancel_on_sigint(client, turn):
            async for event in turn:
                if isinstance(event, ev.TextDelta):
                    text.append(event.text)
                elif isinstance(event, ev.TurnStarted):
                    served = event.model
                elif isinstance(event, ev.RouteDecided):
                    _warn(w for w in event.warnings if w not in choice.notes)
    terminal = turn.terminal
    if isinstance(terminal, ev.TurnCancelled) and terminal.reason in USER_CANCEL_REASONS:
        raise ReviewCancelled(f"review cancelled (turn {turn.turn_id})")
    if isinstance(terminal, ev.TurnFailed):
        raise CliError(f"review turn {turn.turn_id} failed: {terminal.message} [{terminal.error}]")
    if isinstance(terminal, ev.TurnCancelled):
        raise CliError(f"review turn {turn.turn_id} was cancelled ({terminal.reason})")
    assert served is not None
    return "".join(text), served, turn.turn_id


def _print_notes(notes) -> None:
    for note in notes:
        print(f"» {note}", file=sys.stderr)


def _print_result(as_json: bool, review: Review, model: str | None, turn_id: str | None,
                  notes: tuple[str, ...]) -> int:
    _print_notes(notes)
    if as_json:
        print(json.dumps({"verdict": review.verdict, "model": model,
                          "findings": [f.as_json() for f in review.findings], "turn_id": turn_id}))
        return EXIT_OK
    print(f"{review.verdict}" + (f"  ({model}, turn {turn_id})" if model else ""))
    for f in review.findings:
        where = f"{f.file}:{f.line}" if f.file and f.line else f.file or ""
        severity = f"[{f.severity}] " if f.severity else ""
        print(f"- {severity}{where}{' — ' if where else ''}{f.text}")
    return EXIT_OK   # every verdict is a result; only a review that could not run is a failure
