"""``orchestrator check [FILE]…``: every config file of the home in one pass (DESIGN §4.1, §4.2).

Errors are ``file:line: key: problem``, every error of every file; warnings (a provider key that
is not set, a shadowed rule, a model without a known price) never fail the check. A file named on
the command line that does not exist is an error; with no names the home's files are checked
(models.yaml required, routing.yaml, daemon.yaml, roles.yaml and workflows.yaml optional).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from collections.abc import Callable, Mapping

from attrs import frozen

from actors.config.files import RegistryCheck, check_registry_text, key_warnings, load_policy_text, read_text
from actors.config.registry import ModelRegistry
from actors.config.yamlload import read_capped_text
from actors.router.policy_file import implicit_policy

from .settings import parse_settings_text

KINDS = ("models", "routing", "daemon", "roles", "workflows")
KEYS_FILE = "env"     # in the home: KEY=value lines, the service's EnvironmentFile


@frozen
class CheckReport:
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    files: tuple[str, ...]          # the files that were checked, in order

    @property
    def ok(self) -> bool:
        return not self.errors


def kind_of(path: Path) -> str | None:
    """Which config file this is: by name, else by its top-level keys."""
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if stem in KINDS:
        return stem
    try:
        text = read_capped_text(path)       # a regular file only: a FIFO would block us
    except (OSError, UnicodeDecodeError):
        return None
    heads = {line.split(":", 1)[0].strip() for line in text.splitlines() if line[:1].isalpha() and ":" in line}
    if heads & {"providers", "models"}:
        return "models"
    if heads & {"roles", "agents"}:
        return "roles"
    if heads & {"fallback_chains", "workflows"}:
        return "workflows"
    if heads & {"schema_version", "global_default", "rules", "tiers", "workspaces"}:
        return "routing"
    if heads & {"shutdown_grace_s", "max_restarts", "restart_window_s", "log_level", "retry_max_attempts",
                "retry_base_delay_s"}:
        return "daemon"
    return None


def key_names(keys_file: Path) -> set[str]:
    """Variable names set in a ``KEY=value`` file (values are never read into the report)."""
    try:
        text = read_capped_text(keys_file)
    except (OSError, UnicodeDecodeError):
        return set()
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):]
        name, eq, value = line.partition("=")
        if eq and name and not name.startswith("#") and value.strip().strip("'\""):
            names.add(name.strip())
    return names


def _price_warnings(check: RegistryCheck, filename: str) -> list[str]:
    from actors.cost.pricing import price_usage
    from protocol.canonical import Usage

    out = []
    registry = check.registry
    for model in registry.models.values():
        provider = registry.providers.get(model.provider)
        if provider is None or provider.kind == "demo":
            continue
        priced = price_usage(model, Usage(input_tokens=1, output_tokens=1), provider=provider)
        if priced.usage.cost_usd is None:
            out.append(f"{filename}:{check.lines.get(model.id, 1)}: models.{model.id}: no known price "
                       "(no pricing here and none in genai-prices); its calls count as cost unknown")
    return out


class _Checker:
    def __init__(self, home: Path, env: Mapping[str, str], price_check: bool):
        self.home = home
        self.env = env
        self.price_check = price_check
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.files: list[str] = []
        self._registries: dict[Path, RegistryCheck | None] = {}

    def _read(self, path: Path, *, required: bool) -> str | None:
        try:
            text = read_text(str(path))
        except (OSError, UnicodeDecodeError) as exc:
            self.errors.append(f"{path.name}:1: cannot read file: {exc}")
            return None
        if text is None and required:
            hint = "; run `orchestrator init` to write a starter home" if path.name == "models.yaml" else ""
            self.errors.append(f"{path.name}:1: file not found ({path}){hint}")
        return text

    def models(self, path: Path, *, required: bool = True) -> RegistryCheck | None:
        if path in self._registries:
            return self._registries[path]
        text = self._read(path, required=required)
        check = None
        if text is not None:
            self.files.append(str(path))
            check = check_registry_text(text, path.name)
            self.errors.extend(check.errors)
            self.warnings.extend(self._key_warnings(check, path))
            if self.price_check and not check.errors:
                self.warnings.extend(_price_warnings(check, path.name))
        self._registries[path] = check
        return check

    def _key_warnings(self, check: RegistryCheck, path: Path) -> list[str]:
        keys_file = path.parent / KEYS_FILE
        names = key_names(keys_file)
        try:
            if keys_file.stat().st_mode & 0o077:
                self.warnings.append(f"{keys_file.name}:1: the keys file is readable by other users; "
                                     f"run `chmod 600 {keys_file}`")
        except OSError:
            pass
        env = {**self.env, **{n: "set" for n in names}}
        where = f"this shell's environment or {keys_file}" if keys_file.exists() else "this shell's environment"
        return key_warnings(check, path.name, env, where)

    def routing(self, path: Path, models_path: Path, *, required: bool) -> None:
        registry_check = self.models(models_path)
        text = self._read(path, required=required)
        if text is None:
            if registry_check is not None and not registry_check.errors and not required:
                policy = implicit_policy(registry_check.registry, path.name)
                self.warnings.append(f"{path.name}:1: file not found; using the built-in policy "
                                     f"(no rules, global_default {policy.global_default})")
            return
        self.files.append(str(path))
        # No registry to check against (models.yaml missing, unreadable, not YAML, or declaring no
        # model): the rest of routing.yaml is checked, its model references are not, and this is
        # said once instead of one "is not registered" per reference.
        registry: ModelRegistry | None = None
        if registry_check is not None and registry_check.registry.models:
            registry = registry_check.registry
        _, errors, warnings = load_policy_text(text, path.name, registry, home=self.env.get("HOME"))
        if registry is None:
            errors.insert(0, f"{path.name}:1: model references not checked: {models_path.name} could not be read")
        self.errors.extend(errors)
        self.warnings.extend(warnings)

    def daemon(self, path: Path, *, required: bool) -> None:
        text = self._read(path, required=required)
        if text is None:
            return
        self.files.append(str(path))
        _, errors = parse_settings_text(text, path.name)
        self.errors.extend(errors)
        if not errors:
            self._review_spec(text, path.name)

    def _review_spec(self, text: str, name: str) -> None:
        """``review: {backend: SPEC}`` checked against models.yaml, as ``orchestrator review`` will."""
        from actors.review.config import review_config_text
        from actors.review.spec import parse_spec

        found = review_config_text(text, name)
        checked = [c for c in self._registries.values() if c is not None and not c.errors]
        if found.backend is None or not checked:
            return
        parsed = parse_spec(found.backend, checked[0].registry)
        self.errors.extend(f"{found.origin}: {e}" for e in parsed.errors)
        self.warnings.extend(f"{found.origin}: {w}" for w in parsed.warnings)

    def roles(self, path: Path, models_path: Path, *, required: bool) -> None:
        from actors.roles import parse_roles_text

        found = self._read_with_registry(path, models_path, required=required)
        if found is not None:
            text, registry = found
            self.errors.extend(parse_roles_text(text, path.name, registry)[1])

    def workflows(self, path: Path, models_path: Path, *, required: bool) -> None:
        from actors.workflows import parse_workflows_text

        found = self._read_with_registry(path, models_path, required=required)
        if found is not None:
            text, registry = found
            roles = self._role_names(path.parent / "roles.yaml", registry)
            self.errors.extend(parse_workflows_text(text, path.name, registry, roles)[1])

    def _read_with_registry(self, path: Path, models_path: Path, *,
                            required: bool) -> tuple[str, ModelRegistry | None] | None:
        """A file that names models, with the registry to check them against (None: unreadable, said so)."""
        registry_check = self.models(models_path)
        text = self._read(path, required=required)
        if text is None:
            return None
        self.files.append(str(path))
        registry = registry_check.registry if registry_check is not None and registry_check.registry.models else None
        if registry is None:
            self.errors.append(f"{path.name}:1: model references not checked: {models_path.name} could not be read")
        return text, registry

    def _role_names(self, path: Path, registry: ModelRegistry | None) -> set[str] | None:
        """The roles a workflow may name (None: no valid roles.yaml to check them against)."""
        from actors.roles import parse_roles_text

        try:
            text = read_text(str(path))
        except (OSError, UnicodeDecodeError):
            return None
        if text is None:
            return set()
        roles, _ = parse_roles_text(text, path.name, registry)
        return set(roles.roles) if roles is not None else None

    def report(self) -> CheckReport:
        return CheckReport(tuple(self.errors), tuple(self.warnings), tuple(self.files))


def check_home(home: Path, names: list[str] | None = None, *, env: Mapping[str, str] | None = None,
               models_override: str | None = None, routing_default: bool = False,
               price_check: bool = True) -> CheckReport:
    """Check the home's files, or the named ones (plus the models.yaml a routing file refers to).

    ``routing_default``: an unnamed-kind file is a routing file (``rules check FILE``)."""
    env = os.environ if env is None else env
    c = _Checker(home, env, price_check)
    if not names:
        models = Path(models_override) if models_override else home / "models.yaml"
        c.models(models)
        c.routing(home / "routing.yaml", models, required=False)
        c.daemon(home / "daemon.yaml", required=False)
        c.roles(home / "roles.yaml", models, required=False)
        c.workflows(home / "workflows.yaml", models, required=False)
        return c.report()
    checks: dict[str, Callable[[Path], object]] = {
        "models": c.models,
        "routing": lambda p: c.routing(p, Path(models_override) if models_override else p.parent / "models.yaml",
                                       required=True),
        "daemon": lambda p: c.daemon(p, required=True),
        "roles": lambda p: c.roles(p, Path(models_override) if models_override else p.parent / "models.yaml",
                                   required=True),
        "workflows": lambda p: c.workflows(p, Path(models_override) if models_override else p.parent / "models.yaml",
                                           required=True),
    }
    for name in names:
        path = Path(name)
        if not path.exists():
            c.errors.append(f"{path.name}:1: file not found ({path})")
            continue
        if path.is_dir():
            c.errors.append(f"{path}: is a directory, not a config file; to check the home in it, run "
                            f"`ORCHESTRATOR_HOME={path} orchestrator check`")
            continue
        kind = kind_of(path) or ("routing" if routing_default else None)
        if kind is None:
            c.errors.append(f"{path.name}:1: not a config file this version knows "
                            f"(expected one of: {', '.join(k + '.yaml' for k in KINDS)})")
            continue
        checks[kind](path)
    return c.report()


def print_report(report: CheckReport) -> None:
    """The text form of ``check``: warnings on stderr; each error, or "ok", on stdout."""
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in report.errors:
        print(e)
    if report.ok:
        print("ok")
