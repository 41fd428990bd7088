"""`orchestrator roles check [FILE]` and `roles resolve ROLE [--tier T] [--high-risk] [--json]` (DESIGN §4.8).

Both work without a daemon: they read roles.yaml (and models.yaml beside it, for the model
references) from the home, or the file named.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .exitcodes import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CliError


def add_subparser(sub: argparse._SubParsersAction) -> None:
    roles = sub.add_parser("roles", help="roles.yaml: check it, resolve a role's model")
    rsub = roles.add_subparsers(dest="roles_command", required=True, metavar="ACTION")
    ck = rsub.add_parser("check", help="validate roles.yaml: drift checks and the tier floor; no daemon needed")
    ck.add_argument("file", nargs="?", help="a roles file (default: roles.yaml in the home)")
    ck.add_argument("--models", help="the models.yaml to check model references against "
                    "(default: the one beside FILE, else the home's)")
    ck.add_argument("--json", action="store_true", help='one object {"ok", "errors", "warnings", "files"}')
    rs = rsub.add_parser("resolve", help="the model a role uses at a complexity tier")
    rs.add_argument("role", help="a role under roles: in roles.yaml")
    rs.add_argument("--tier", help="TRIVIAL, SMALL, MEDIUM or LARGE (default: the role's top-level row)")
    rs.add_argument("--high-risk", action="store_true", help="an unresolved high risk (a reviewer role → LARGE)")
    rs.add_argument("--file", help="a roles file (default: roles.yaml in the home)")
    rs.add_argument("--json", action="store_true",
                    help='one object {"role", "tier", "model", "fallbacks", "cost_tier", "effort"}')


def _roles_file(name: str | None) -> Path:
    from .paths import resolve_paths

    return Path(name) if name else resolve_paths().home / "roles.yaml"


def _models_beside(roles_file: Path) -> Path:
    """The models.yaml for a roles file: the one beside it, else the home's — a draft edited outside
    the home is checked against the registry it will be used with, not reported as "no models.yaml"."""
    from .paths import resolve_paths

    beside = roles_file.parent / "models.yaml"
    return beside if beside.exists() else resolve_paths().home / "models.yaml"


def run(args: argparse.Namespace) -> int:
    if args.roles_command == "check":
        return _check(args)
    return _resolve(args)


def _check(args: argparse.Namespace) -> int:
    from .check import _Checker, print_report

    path = _roles_file(args.file)
    if path.is_dir():
        raise CliError(f"{path}: is a directory, not a roles file")
    models = Path(args.models) if args.models else _models_beside(path)
    checker = _Checker(path.parent, os.environ, price_check=False)
    if not path.exists():
        hint = "" if args.file else "; roles.yaml is optional: write one from the example in docs/roles.md"
        checker.errors.append(f"{path.name}:1: file not found ({path}){hint}")
    else:
        checker.roles(path, models, required=True)
    report = checker.report()
    if args.json:
        print(json.dumps({"ok": report.ok, "errors": list(report.errors), "warnings": list(report.warnings),
                          "files": list(report.files)}))
    else:
        print_report(report)
    return EXIT_OK if report.ok else EXIT_FAIL


def _resolve(args: argparse.Namespace) -> int:
    from actors.config.files import check_registry_text, read_text
    from actors.roles import RoleError, normalize_tier, parse_roles_text, resolve

    if args.tier is not None:
        try:   # a tier is one of four words: a usage error (exit 2), as for `ask --role R --tier T`
            args.tier = normalize_tier(args.tier)
        except RoleError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    path = _roles_file(args.file)
    try:
        text = read_text(str(path))
        models_text = read_text(str(_models_beside(path)))
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    if text is None:
        raise CliError(f"no roles file at {path}: roles are configured in roles.yaml in the home (docs/roles.md)")
    registry = check_registry_text(models_text).registry if models_text is not None else None
    config, errors = parse_roles_text(text, path.name, registry if registry is not None and registry.models else None)
    if config is None:
        raise CliError(f"{errors[0]}" + (f" (+{len(errors) - 1} more; `orchestrator roles check` lists them)"
                                         if len(errors) > 1 else ""))
    try:
        resolved = resolve(config, args.role, args.tier, args.high_risk)
    except RoleError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(resolved.to_json()))
        return EXIT_OK
    tier = resolved.tier or "none (the role's top-level row)"
    if resolved.forced_large:
        tier += " (unresolved high risk)"
    print(f"role:      {resolved.role}")
    print(f"tier:      {tier}")
    print(f"model:     {resolved.model}")
    print(f"fallbacks: {', '.join(resolved.fallbacks) or 'none'}")
    print(f"cost_tier: {resolved.cost_tier} · latency_tier: {resolved.latency_tier} · "
          f"effort: {resolved.effort or 'none'}")
    return EXIT_OK
