"""Parse and validate ``models.yaml`` and ``routing.yaml`` (DESIGN §4.2, spec §5.1–§5.9).

Both parsers work on TEXT (file reading happens only in :func:`check_files` and the router's
loader), collect every problem in one pass, and format each as
``<file>:<line>: <key.path>: <plain-English problem>``.

Public API:

* :func:`load_registry_text` → ``(ModelRegistry | None, errors)``
* :func:`load_policy_text` → ``(RoutingPolicy | None, errors, warnings)``
* :func:`check_files` → :class:`CheckResult` (``orchestrator rules check``)
"""
from __future__ import annotations

import math
import os
import re
from decimal import Decimal
from typing import Any
from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs
from attrs import frozen

from actors.config.yamlload import read_capped_text
from actors.config.registry import (
    DEFAULT_KEY_ENV, EFFORTS, PROVIDER_KINDS, TIERS, ModelRegistry, ModelSpec, Pricing, ProviderSpec,
)
from actors.router.policy import RoutingPolicy
from actors.router.policy_file import implicit_policy, parse_policy
from actors.router.yamlpos import Problems, describe, item_line, join, key_line, parse_yaml, plain
from protocol.canonical import AdapterCapabilities

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_PROVIDER_KEYS = ("kind", "base_url", "api_key_env", "timeout_s", "options")
_MODEL_KEYS = (
    "tier", "can_delegate", "aliases", "capabilities", "pricing", "command", "timeout_s", "max_output_tokens",
    "options", "family", "efforts",
)
_PRICING_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")
_CAPABILITY_FIELDS = {a.name: a.type for a in attrs.fields(AdapterCapabilities)}


def check_keys(mapping: Mapping, allowed: tuple[str, ...], path: str, line: int, problems: Problems) -> None:
    for key in mapping:
        if key not in allowed:
            problems.add(
                key_line(mapping, key, line), join(path, key), f"unknown key (expected one of: {', '.join(allowed)})"
            )


def _positive_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _price(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        price = Decimal(str(plain(value))) if isinstance(value, (int, float, str)) else None
    except ArithmeticError:
        return None
    return price if price is not None and price.is_finite() and price >= 0 else None


def url_problem(value: Any) -> str | None:
    """Why ``value`` is not an http(s) URL with a host, or None when it is one."""
    if not isinstance(value, str) or not value:
        return f"expected an http:// or https:// URL, got {describe(value)}"
    try:
        parts = urlsplit(value)
        parts.port   # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        return f"'{value}' is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return f"'{value}' is not an http:// or https:// URL (e.g. http://127.0.0.1:8000/v1)"
    if not parts.hostname:
        return f"'{value}' has no host (e.g. http://127.0.0.1:8000/v1)"
    return None


def _parse_provider(name: Any, entry: Any, line: int, problems: Problems) -> ProviderSpec | None:
    path = join("providers", name)
    if not isinstance(name, str) or not _NAME.match(name):
        problems.add(line, path, "provider name must be letters, digits, '_', '.' or '-' (no ':')")
        return None
    if not isinstance(entry, dict):
        problems.add(line, path, f"expected a mapping with at least 'kind', got {describe(entry)}")
        return None
    check_keys(entry, _PROVIDER_KEYS, path, line, problems)
    ok = True
    kind = entry.get("kind")
    if kind not in PROVIDER_KINDS:
        shown = "missing" if kind is None else f"'{kind}' is not a provider kind"
        problems.add(key_line(entry, "kind", line), join(path, "kind"),
                     f"{shown} (expected one of: {', '.join(PROVIDER_KINDS)})")
        ok = False
    base_url = entry.get("base_url")
    if base_url is not None:
        problem = url_problem(base_url)
        if problem:
            problems.add(key_line(entry, "base_url", line), join(path, "base_url"), problem)
            ok = False
    if "api_key_env" in entry:
        # An explicit null means "this provider needs no key" (local servers).
        key_env = entry["api_key_env"]
        if key_env is not None and (not isinstance(key_env, str) or not _ENV_VAR.match(key_env)):
            problems.add(key_line(entry, "api_key_env", line), join(path, "api_key_env"),
                         f"expected an environment variable name or null, got {describe(key_env)}")
            ok = False
    else:
        key_env = DEFAULT_KEY_ENV.get(kind) if isinstance(kind, str) else None
    timeout = 600.0
    if "timeout_s" in entry:
        parsed = _positive_number(entry["timeout_s"])
        if parsed is None:
            problems.add(key_line(entry, "timeout_s", line), join(path, "timeout_s"),
                         f"expected a positive number of seconds, got {describe(entry['timeout_s'])}")
            ok = False
        else:
            timeout = parsed
    options = entry.get("options", {})
    if not isinstance(options, dict):
        problems.add(key_line(entry, "options", line), join(path, "options"),
                     f"expected a mapping, got {describe(options)}")
        ok = False
    if not ok:
        return None
    return ProviderSpec(name=name, kind=str(kind), base_url=plain(base_url), api_key_env=plain(key_env),
                        timeout_s=timeout, options=plain(options))


def _parse_capabilities(value: Any, path: str, line: int, problems: Problems) -> AdapterCapabilities | None:
    if not isinstance(value, dict):
        problems.add(line, path, f"expected a mapping, got {describe(value)}")
        return None
    check_keys(value, tuple(_CAPABILITY_FIELDS), path, line, problems)
    fields: dict[str, Any] = {}
    for key, kind in _CAPABILITY_FIELDS.items():
        if key not in value:
            continue  # undeclared capabilities take the §4.4 defaults
        v, kline = value[key], key_line(value, key, line)
        if "int" in str(kind):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                problems.add(kline, join(path, key), f"expected a positive integer, got {describe(v)}")
                continue
            fields[key] = int(v)
        else:
            if not isinstance(v, bool):
                problems.add(kline, join(path, key), f"expected true or false, got {describe(v)}")
                continue
            fields[key] = bool(v)
    return AdapterCapabilities(**fields)


def _parse_pricing(value: Any, path: str, line: int, problems: Problems) -> Pricing | None:
    if not isinstance(value, dict):
        problems.add(line, path, f"expected a mapping, got {describe(value)}")
        return None
    check_keys(value, _PRICING_KEYS, path, line, problems)
    prices: dict[str, Decimal] = {}
    for key in _PRICING_KEYS:
        if key not in value:
            if key in ("input_per_mtok", "output_per_mtok"):
                problems.add(line, join(path, key), "missing (USD per million tokens)")
            continue
        price = _price(value[key])
        if price is None:
            problems.add(key_line(value, key, line), join(path, key),
                         f"expected a non-negative USD amount per million tokens, got {describe(value[key])}")
            continue
        prices[key] = price
    if "input_per_mtok" not in prices or "output_per_mtok" not in prices:
        return None
    return Pricing(**prices)


def _parse_model(model_id: Any, entry: Any, line: int, providers: Mapping[str, Any], declared: set,
                 problems: Problems) -> ModelSpec | None:
    path = join("models", model_id)
    provider = name = ""
    if not isinstance(model_id, str) or ":" not in model_id:
        problems.add(line, path, "model id must be 'provider:model'")
        return None
    provider, _, name = model_id.partition(":")
    if not provider or not name:
        problems.add(line, path, "model id must be 'provider:model'")
        return None
    if provider not in declared:
        problems.add(line, path, f"provider '{provider}' is not declared under providers")
    entry = {} if entry is None else entry
    if not isinstance(entry, dict):
        problems.add(line, path, f"expected a mapping, got {describe(entry)}")
        return None
    check_keys(entry, _MODEL_KEYS, path, line, problems)
    before = len(problems.items)
    kl = lambda key: key_line(entry, key, line)  # noqa: E731
    tier = entry.get("tier")
    if tier is not None and tier not in TIERS:
        problems.add(kl("tier"), join(path, "tier"), f"'{tier}' is not a tier (expected fast, balanced or deep)")
    can_delegate = entry.get("can_delegate", False)
    if not isinstance(can_delegate, bool):
        problems.add(kl("can_delegate"), join(path, "can_delegate"),
                     f"expected true or false, got {describe(can_delegate)}")
    aliases = entry.get("aliases", [])
    if isinstance(aliases, str):
        aliases = [aliases]
    if not isinstance(aliases, list):
        problems.add(kl("aliases"), join(path, "aliases"), f"expected a list of names, got {describe(aliases)}")
        aliases = []
    caps: AdapterCapabilities | None = AdapterCapabilities()   # None: the section had errors
    if "capabilities" in entry:
        caps = _parse_capabilities(entry["capabilities"], join(path, "capabilities"), kl("capabilities"), problems)
    pricing = None
    if entry.get("pricing") is not None:
        pricing = _parse_pricing(entry["pricing"], join(path, "pricing"), kl("pricing"), problems)
    kind = getattr(providers.get(provider), "kind", None)
    command = entry.get("command")
    if command is not None:
        if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
            problems.add(kl("command"), join(path, "command"),
                         f"expected a non-empty list of strings (argv), got {describe(command)}")
        elif kind is not None and kind != "cli":
            problems.add(kl("command"), join(path, "command"),
                         f"only models of a 'cli' provider take a command ('{provider}' is '{kind}')")
    elif kind == "cli":
        problems.add(line, join(path, "command"), "missing: models of a 'cli' provider need an argv list")
    timeout = None
    if entry.get("timeout_s") is not None:
        timeout = _positive_number(entry["timeout_s"])
        if timeout is None:
            problems.add(kl("timeout_s"), join(path, "timeout_s"),
                         f"expected a positive number of seconds, got {describe(entry['timeout_s'])}")
    max_out = entry.get("max_output_tokens", 4096)
    if isinstance(max_out, bool) or not isinstance(max_out, int) or max_out <= 0:
        problems.add(kl("max_output_tokens"), join(path, "max_output_tokens"),
                     f"expected a positive integer, got {describe(max_out)}")
    options = entry.get("options", {})
    if not isinstance(options, dict):
        problems.add(kl("options"), join(path, "options"), f"expected a mapping, got {describe(options)}")
    family = entry.get("family")
    if family is not None and (not isinstance(family, str) or not _NAME.match(family)):
        problems.add(kl("family"), join(path, "family"),
                     f"expected a family name such as anthropic or openai, got {describe(family)}")
    efforts = _parse_efforts(entry, path, kl("efforts"), problems)
    if len(problems.items) != before or caps is None:
        return None
    return ModelSpec(
        id=model_id, provider=provider, name=name, tier=plain(tier), can_delegate=bool(can_delegate),
        aliases=tuple(str(a) for a in aliases if isinstance(a, str)), capabilities=caps, pricing=pricing,
        command=tuple(str(a) for a in command) if command else None, timeout_s=timeout,
        max_output_tokens=int(max_out), options=plain(options), family=plain(family), efforts=efforts,
    )


def _parse_efforts(entry: Mapping, path: str, line: int, problems: Problems) -> tuple[str, ...]:
    """``efforts: [low, medium, high]``: the reasoning efforts the model accepts, each once."""
    raw = entry.get("efforts", [])
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        problems.add(line, join(path, "efforts"), f"expected a list of efforts ({', '.join(EFFORTS)}), "
                                                   f"got {describe(raw)}")
        return ()
    efforts: list[str] = []
    for i, value in enumerate(raw):
        where = join(join(path, "efforts"), i)
        if value not in EFFORTS:
            problems.add(item_line(raw, i, line), where,
                         f"{describe(value)} is not an effort (expected one of: {', '.join(EFFORTS)})")
        elif value in efforts:
            problems.add(item_line(raw, i, line), where, f"effort '{value}' is listed twice")
        else:
            efforts.append(str(value))
    return tuple(efforts)


def _check_aliases(models: Any, mline: int, problems: Problems) -> None:
    owner: dict[str, str] = {}
    for model_id, entry in models.items():
        aliases = entry.get("aliases") if isinstance(entry, dict) else None
        if isinstance(aliases, str):
            aliases = [aliases]
        if not isinstance(aliases, list):
            continue
        base = key_line(models, model_id, mline)
        aline = key_line(entry, "aliases", base)
        for i, alias in enumerate(aliases):
            path = join(join(join("models", model_id), "aliases"), i)
            line = item_line(aliases, i, aline)
            if not isinstance(alias, str) or not _ALIAS.match(alias):
                problems.add(line, path, "alias must be letters, digits, '_', '.' or '-' (no ':' or spaces)")
            elif alias in models:
                problems.add(line, path, f"alias '{alias}' is also a model id")
            elif alias in owner:
                other = owner[alias]
                what = "listed twice" if other == model_id else f"already used by model '{other}'"
                problems.add(line, path, f"alias '{alias}' of model '{model_id}' is {what}")
            else:
                owner[alias] = str(model_id)


@frozen
class RegistryCheck:
    """models.yaml checked for ``orchestrator check``: every error, plus a best-effort registry.

    ``registry`` holds every model that parsed, and a placeholder for each declared model that did
    not, so routing.yaml can still be checked in the same pass without spurious "not registered"
    errors. ``lines`` maps provider names and model ids to their line, for warnings."""

    registry: ModelRegistry
    errors: tuple[str, ...]
    lines: Mapping[str, int]


def _parse_registry(text: str, filename: str) -> tuple[ModelRegistry | None, ModelRegistry, Problems, dict[str, int]]:
    """(registry when valid, best-effort registry, problems, line of each provider and model)."""
    problems = Problems(os.path.basename(filename))
    lines: dict[str, int] = {}
    data, ok = parse_yaml(text, problems)
    if not ok:
        return None, ModelRegistry(), problems, lines
    if not isinstance(data, dict):
        problems.add(1, "", f"expected a mapping with 'providers' and 'models', got {describe(data)}")
        return None, ModelRegistry(), problems, lines
    check_keys(data, ("providers", "models"), "", 1, problems)
    providers: dict[str, ProviderSpec] = {}
    raw_providers = data.get("providers")
    pline = key_line(data, "providers", 1)
    declared: set = set()
    if not isinstance(raw_providers, dict) or not raw_providers:
        problems.add(pline, "providers", "missing or empty: declare at least one provider")
    else:
        declared = set(raw_providers)
        for name, entry in raw_providers.items():
            lines[str(name)] = key_line(raw_providers, name, pline)
            spec = _parse_provider(name, entry, lines[str(name)], problems)
            if spec is not None:
                providers[name] = spec
    specs: dict[str, ModelSpec] = {}
    placeholders: dict[str, ModelSpec] = {}
    raw_models = data.get("models")
    mline = key_line(data, "models", 1)
    if not isinstance(raw_models, dict) or not raw_models:
        problems.add(mline, "models", "missing or empty: declare at least one model")
    else:
        for model_id, entry in raw_models.items():
            line = key_line(raw_models, model_id, mline)
            model = _parse_model(model_id, entry, line, providers, declared, problems)
            if model is not None:
                specs[model_id] = model
            elif isinstance(model_id, str) and ":" in model_id:
                aliases = entry.get("aliases") if isinstance(entry, dict) else None
                aliases = [aliases] if isinstance(aliases, str) else aliases if isinstance(aliases, list) else []
                provider, _, name = model_id.partition(":")
                placeholders[model_id] = ModelSpec(id=model_id, provider=provider, name=name,
                                                   aliases=tuple(a for a in aliases if isinstance(a, str)))
            if isinstance(model_id, str):
                lines[model_id] = line
        _check_aliases(raw_models, mline, problems)
    best_effort = ModelRegistry(providers=providers, models={**placeholders, **specs})
    if problems:
        return None, best_effort, problems, lines
    registry = ModelRegistry(providers=providers, models=specs)
    return registry, registry, problems, lines


def load_registry_text(text: str, filename: str = "models.yaml") -> tuple[ModelRegistry | None, list[str]]:
    registry, _, problems, _ = _parse_registry(text, filename)
    return registry, problems.sorted() if registry is None else []


def check_registry_text(text: str, filename: str = "models.yaml") -> RegistryCheck:
    _, best_effort, problems, lines = _parse_registry(text, filename)
    return RegistryCheck(best_effort, tuple(problems.sorted()), lines)


def key_warnings(check: RegistryCheck, filename: str, env: Mapping[str, str], where: str) -> list[str]:
    """One warning per provider whose key variable is unset in ``env``: its models are
    ``not_configured`` and routing falls through past them. ``where`` names the environment."""
    warnings = []
    registry = check.registry
    for name, provider in registry.providers.items():
        var = provider.api_key_env
        if not var or env.get(var):
            continue
        models = [m.id for m in registry.models.values() if m.provider == name]
        if not models:
            continue
        warnings.append(f"{os.path.basename(filename)}:{check.lines.get(name, 1)}: providers.{name}: "
                        f"{var} is not set in {where}; unless the daemon's environment has it, "
                        f"{', '.join(models)} {'is' if len(models) == 1 else 'are'} not_configured")
    return warnings


def load_policy_text(text: str, filename: str, registry: ModelRegistry | None, *,
                     home: str | None = None) -> tuple[RoutingPolicy | None, list[str], list[str]]:
    """Parse routing.yaml against ``registry``; ``home`` expands ``~`` in workspace paths.

    ``registry`` None: models.yaml could not be read; model references are not checked."""
    return parse_policy(text, os.path.basename(filename), registry, home=home)


@frozen
class CheckResult:
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    registry: ModelRegistry | None = None
    policy: RoutingPolicy | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def read_text(path: str) -> str | None:
    """The file's text, or None when it does not exist (other OS errors propagate).

    At most one character over the config size cap is read: the parser then reports the file as
    too large instead of the daemon reading a huge file into memory.
    """
    try:
        return read_capped_text(path)
    except FileNotFoundError:
        return None


def load_files(models_path: str, routing_path: str, *, home: str | None = None) -> CheckResult:
    """Read and validate both files. A missing routing.yaml yields the implicit policy + a warning."""
    models_name, routing_name = os.path.basename(models_path), os.path.basename(routing_path)
    errors: list[str] = []
    try:
        models_text = read_text(models_path)
    except (OSError, UnicodeDecodeError) as exc:
        return CheckResult(errors=(f"{models_name}:1: cannot read file: {exc}",), warnings=())
    if models_text is None:
        return CheckResult(errors=(f"{models_name}:1: file not found ({models_path})",), warnings=())
    registry, errors = load_registry_text(models_text, models_name)
    if registry is None:
        return CheckResult(errors=tuple(errors), warnings=())
    try:
        routing_text = read_text(routing_path)
    except (OSError, UnicodeDecodeError) as exc:
        return CheckResult(errors=(f"{routing_name}:1: cannot read file: {exc}",), warnings=(), registry=registry)
    if routing_text is None:
        policy = implicit_policy(registry, routing_name)
        note = (f"{routing_name}:1: file not found; using the built-in policy "
                f"(no rules, global_default {policy.global_default})")
        return CheckResult(errors=(), warnings=(note,), registry=registry, policy=policy)
    loaded, perrors, warnings = load_policy_text(routing_text, routing_name, registry, home=home)
    return CheckResult(errors=tuple(perrors), warnings=tuple(warnings), registry=registry, policy=loaded)


def check_files(models_path: str, routing_path: str, *, home: str | None = None) -> CheckResult:
    """``orchestrator rules check``: every error and warning of both files, in one pass."""
    return load_files(models_path, routing_path, home=home)
