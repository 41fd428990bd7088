"""Parse and validate roles.yaml (DESIGN §4.8) — text in, frozen config and error lines out.

Every problem is ``roles.yaml:LINE: key.path: problem``, all of them in one pass; the parser
never raises on any YAML shape (a property test feeds it arbitrary documents). Entry-local
problems (types, enums, the by_tier shape) are found here; the cross-entry drift checks and the
tier-floor invariant are in :mod:`actors.roles.checks`, run on what parsed
(:func:`actors.roles.validate.parse_roles_text` does both).
"""
from __future__ import annotations

import os
import re
from typing import Any
from collections.abc import Mapping

from actors.router import yamlpos
from actors.router.yamlpos import Problems, describe, item_line, key_line, parse_yaml

from actors.roles.model import (
    COMPLEXITY_TIERS, COST_TIERS, EFFORTS, LATENCY_TIERS, MODES, Agent, Role, RolesConfig, TierRow,
)

_TOP_KEYS = ("schema_version", "orchestrator", "roles", "agents")
_ROW_KEYS = ("primary", "fallbacks", "cost_tier", "latency_tier")
_ROLE_KEYS = ("reviewer", *_ROW_KEYS, "reasoning_effort_hint", "consumers", "by_tier")
_AGENT_KEYS = ("role", "mode", "model")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")


def join(path: str, key: Any) -> str:
    """Like the other config files' key paths, but role and agent names keep their hyphens:
    ``roles.capable-reviewer.cost_tier`` rather than ``roles['capable-reviewer'].cost_tier``."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return yamlpos.join(path, key)


class Lines(dict[str, int]):
    """Line of each key path that parsed (``roles.x.cost_tier``, ``agents.y``), for the drift checks."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, int, str]] = []    # (key path, line, model id) of every model reference
        # References without ':' — not ids; reported by the drift checks, which know models.yaml's
        # aliases and can say "it is an alias of …".
        self.bare: list[tuple[str, int, str]] = []

    def at(self, path: str, default: int = 1) -> int:
        return self.get(path, default)


def _name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and value == value.strip()


def _model_ref(value: Any, path: str, line: int, problems: Problems, lines: Lines) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.add(line, path, f"expected a model id 'provider:model', got {describe(value)}")
        return None
    if ":" not in value:
        lines.bare.append((path, line, str(value)))
        return None
    lines.refs.append((path, line, str(value)))
    return str(value)


def _enum(entry: Mapping, key: str, allowed: tuple[str, ...], path: str, line: int, problems: Problems,
          *, required: bool) -> str | None:
    if key not in entry:
        if required:
            problems.add(line, join(path, key), f"missing (one of: {', '.join(allowed)})")
        return None
    value = entry[key]
    if value not in allowed:
        problems.add(key_line(entry, key, line), join(path, key),
                     f"{describe(value)} is not one of: {', '.join(allowed)}")
        return None
    return str(value)


def _row(entry: Mapping, path: str, line: int, problems: Problems, lines: Lines) -> TierRow | None:
    """primary, fallbacks, cost_tier, latency_tier of a role or of a full by_tier override."""
    before = len(problems.items)
    primary = None
    if "primary" not in entry:
        problems.add(line, join(path, "primary"), "missing: the model this row uses first")
    else:
        primary = _model_ref(entry["primary"], join(path, "primary"), key_line(entry, "primary", line), problems, lines)
        lines[join(path, "primary")] = key_line(entry, "primary", line)
    fallbacks: list[str] = []
    raw = entry.get("fallbacks", [])
    fline = key_line(entry, "fallbacks", line)
    if not isinstance(raw, list):
        problems.add(fline, join(path, "fallbacks"), f"expected a list of model ids, got {describe(raw)}")
    else:
        for i, item in enumerate(raw):
            ipath, iline = join(join(path, "fallbacks"), i), item_line(raw, i, fline)
            model = _model_ref(item, ipath, iline, problems, lines)
            if model is None:
                continue
            if model == primary or model in fallbacks:
                problems.add(iline, ipath, f"'{model}' is listed twice (the primary and fallbacks are one ordered "
                                           "chain)")
                continue
            fallbacks.append(model)
            lines[ipath] = iline
    cost = _enum(entry, "cost_tier", COST_TIERS, path, line, problems, required=True)
    latency = _enum(entry, "latency_tier", LATENCY_TIERS, path, line, problems, required=True)
    if cost is not None:
        lines[join(path, "cost_tier")] = key_line(entry, "cost_tier", line)
    if len(problems.items) != before or primary is None or cost is None or latency is None:
        return None
    return TierRow(primary, tuple(fallbacks), cost, latency)


def _by_tier(raw: Any, path: str, line: int, problems: Problems, lines: Lines) -> dict[str, TierRow] | None:
    """The tier shape of the seed: each key a complexity tier; each value a full row or
    exactly ``{inherit_from: default}`` (absent tiers inherit too)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(line, path, f"expected a mapping of {', '.join(COMPLEXITY_TIERS)}, got {describe(raw)}")
        return None
    out: dict[str, TierRow] = {}
    ok = True
    for tier, entry in raw.items():
        tpath, tline = join(path, tier), key_line(raw, tier, line)
        if tier not in COMPLEXITY_TIERS:
            problems.add(tline, tpath, f"{describe(tier)} is not a complexity tier "
                                       f"(expected one of: {', '.join(COMPLEXITY_TIERS)})")
            ok = False
            continue
        if not isinstance(entry, dict) or not entry:
            problems.add(tline, tpath, f"expected a full row ({', '.join(_ROW_KEYS)}) or "
                                       f"{{inherit_from: default}}, got {describe(entry)}")
            ok = False
            continue
        if "inherit_from" in entry:
            extra = [k for k in entry if k != "inherit_from"]
            if entry["inherit_from"] != "default":
                problems.add(key_line(entry, "inherit_from", tline), join(tpath, "inherit_from"),
                             f"{describe(entry['inherit_from'])}: only 'default' (the role's top-level row) "
                             "is supported")
                ok = False
            if extra:
                mixed = ", ".join(map(str, extra))
                problems.add(tline, tpath, f"inherit_from cannot be mixed with other keys ({mixed}): "
                                           "write a full row or {inherit_from: default}")
                ok = False
            continue
        unknown = [k for k in entry if k not in _ROW_KEYS]
        for key in unknown:
            where = "it is a per-role field, a sibling of by_tier" if key == "reasoning_effort_hint" else (
                f"expected one of: {', '.join(_ROW_KEYS)}, or inherit_from")
            problems.add(key_line(entry, key, tline), join(tpath, key), f"unknown key in a by_tier row ({where})")
        missing = [k for k in _ROW_KEYS if k not in entry]
        if missing:
            problems.add(tline, tpath, f"a by_tier override must be a full row: missing {', '.join(missing)} "
                                       "(or write {inherit_from: default})")
            ok = False
            continue
        row = _row(entry, tpath, tline, problems, lines)
        if row is None or unknown:
            ok = False
            continue
        out[str(tier)] = row
    return out if ok else None


def _role(name: Any, entry: Any, line: int, problems: Problems, lines: Lines) -> Role | None:
    path = join("roles", name)
    if not _name(name):
        problems.add(line, path, "a role name must be a non-empty string without surrounding spaces")
        return None
    if not isinstance(entry, dict):
        problems.add(line, path, f"expected a mapping with primary, fallbacks, cost_tier, latency_tier, "
                                 f"got {describe(entry)}")
        return None
    before = len(problems.items)
    for key in entry:
        if key not in _ROLE_KEYS:
            problems.add(key_line(entry, key, line), join(path, key),
                         f"unknown key (expected one of: {', '.join(_ROLE_KEYS)})")
    default = _row(entry, path, line, problems, lines)
    reviewer = entry.get("reviewer", False)
    if not isinstance(reviewer, bool):
        problems.add(key_line(entry, "reviewer", line), join(path, "reviewer"),
                     f"expected true or false, got {describe(reviewer)}")
    effort = None
    if entry.get("reasoning_effort_hint") is not None:
        effort = _enum(entry, "reasoning_effort_hint", EFFORTS, path, line, problems, required=False)
    consumers: list[str] = []
    raw = entry.get("consumers", [])
    cline = key_line(entry, "consumers", line)
    lines[join(path, "consumers")] = cline
    if not isinstance(raw, list):
        problems.add(cline, join(path, "consumers"), f"expected a list of agent names, got {describe(raw)}")
    else:
        for i, item in enumerate(raw):
            if not _name(item):
                problems.add(item_line(raw, i, cline), join(join(path, "consumers"), i),
                             f"expected an agent name, got {describe(item)}")
            elif item in consumers:
                problems.add(item_line(raw, i, cline), join(join(path, "consumers"), i), f"'{item}' is listed twice")
            else:
                consumers.append(str(item))
                lines[join(join(path, "consumers"), item)] = item_line(raw, i, cline)
    by_tier = _by_tier(entry.get("by_tier"), join(path, "by_tier"), key_line(entry, "by_tier", line), problems, lines)
    if len(problems.items) != before or default is None or by_tier is None:
        return None
    return Role(str(name), default, bool(reviewer), effort, tuple(consumers), by_tier)


def _agent(name: Any, entry: Any, line: int, problems: Problems, lines: Lines) -> Agent | None:
    path = join("agents", name)
    if not _name(name):
        problems.add(line, path, "an agent name must be a non-empty string without surrounding spaces")
        return None
    if not isinstance(entry, dict):
        problems.add(line, path, f"expected a mapping with role and mode, got {describe(entry)}")
        return None
    before = len(problems.items)
    for key in entry:
        if key not in _AGENT_KEYS:
            problems.add(key_line(entry, key, line), join(path, key),
                         f"unknown key (expected one of: {', '.join(_AGENT_KEYS)})")
    role = entry.get("role")
    if not _name(role):
        problems.add(key_line(entry, "role", line), join(path, "role"),
                     "missing: the role this agent uses" if role is None
                     else f"expected a role name, got {describe(role)}")
    mode = _enum(entry, "mode", MODES, path, line, problems, required=True)
    model = None
    if entry.get("model") is not None:
        model = _model_ref(entry["model"], join(path, "model"), key_line(entry, "model", line), problems, lines)
        lines[join(path, "model")] = key_line(entry, "model", line)
    lines[join(path, "role")] = key_line(entry, "role", line)
    if len(problems.items) != before or mode is None:
        return None
    return Agent(str(name), str(role), mode, model)


def parse_roles(text: str, filename: str = "roles.yaml") -> tuple[RolesConfig | None, Problems, Lines]:
    """Entry-local parse: (every entry that parsed — None when the document is not a mapping —,
    problems, key lines). ``lines`` also records every *declared* role and agent (``roles.x``,
    ``agents.y``), parsed or not, so the drift checks never call a broken entry "unknown"."""
    problems = Problems(os.path.basename(filename))
    lines = Lines()
    data, ok = parse_yaml(text, problems)
    if not ok:
        return None, problems, lines
    if not isinstance(data, dict):
        problems.add(1, "", f"expected a mapping with 'roles' and 'agents', got {describe(data)}")
        return None, problems, lines
    for key in data:
        if key not in _TOP_KEYS:
            problems.add(key_line(data, key, 1), join("", key),
                         f"unknown key (expected one of: {', '.join(_TOP_KEYS)})")
    version = data.get("schema_version", 1)
    if version != 1 or isinstance(version, bool):
        problems.add(key_line(data, "schema_version", 1), "schema_version",
                     f"{describe(version)} is not supported (this version reads schema_version: 1)")
    orchestrator = data.get("orchestrator")
    if orchestrator is not None and not _name(orchestrator):
        problems.add(key_line(data, "orchestrator", 1), "orchestrator",
                     f"expected the name of an agent under agents, got {describe(orchestrator)}")
        orchestrator = None
    lines["orchestrator"] = key_line(data, "orchestrator", 1)
    roles: dict[str, Role] = {}
    raw_roles = data.get("roles")
    rline = key_line(data, "roles", 1)
    if not isinstance(raw_roles, dict) or not raw_roles:
        problems.add(rline, "roles", "missing or empty: declare at least one role")
    else:
        for name, entry in raw_roles.items():
            line = key_line(raw_roles, name, rline)
            lines[join("roles", name)] = line
            role = _role(name, entry, line, problems, lines)
            if role is not None:
                roles[role.name] = role
    agents: dict[str, Agent] = {}
    raw_agents = data.get("agents", {})
    aline = key_line(data, "agents", 1)
    if raw_agents is not None and not isinstance(raw_agents, dict):
        problems.add(aline, "agents", f"expected a mapping of agent names, got {describe(raw_agents)}")
    else:
        for name, entry in (raw_agents or {}).items():
            line = key_line(raw_agents, name, aline)
            lines[join("agents", name)] = line
            agent = _agent(name, entry, line, problems, lines)
            if agent is not None:
                agents[agent.name] = agent
    config = RolesConfig(roles, agents, str(orchestrator) if orchestrator is not None else None, 1)
    return config, problems, lines
